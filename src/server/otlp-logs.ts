// OTLP/HTTP logs requests (`ExportLogsServiceRequest`, protobuf) read into
// plain records. The wire format is decoded by protobufjs from the message
// definitions below: the logs part of opentelemetry-proto (v1, the field
// numbers OpenTelemetry's own serializers write), trimmed to what is read.
import protobuf from 'protobufjs';

const OTLP_LOGS_PROTO = `
syntax = "proto3";
package otlp;

message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope {
  string name = 1;
  string version = 2;
  repeated KeyValue attributes = 3;
  uint32 dropped_attributes_count = 4;
}
message Resource {
  repeated KeyValue attributes = 1;
  uint32 dropped_attributes_count = 2;
}
message LogRecord {
  fixed64 time_unix_nano = 1;
  fixed64 observed_time_unix_nano = 11;
  int32 severity_number = 2;
  string severity_text = 3;
  AnyValue body = 5;
  repeated KeyValue attributes = 6;
  uint32 dropped_attributes_count = 7;
  fixed32 flags = 8;
  bytes trace_id = 9;
  bytes span_id = 10;
  string event_name = 12;
}
message ScopeLogs {
  InstrumentationScope scope = 1;
  repeated LogRecord log_records = 2;
  string schema_url = 3;
}
message ResourceLogs {
  Resource resource = 1;
  repeated ScopeLogs scope_logs = 2;
  string schema_url = 3;
}
message ExportLogsServiceRequest { repeated ResourceLogs resource_logs = 1; }
`;

/** An attribute or body value: what OTLP's AnyValue can hold. */
export type OtlpValue = string | boolean | number | null | OtlpValue[] | { [key: string]: OtlpValue };

export interface OtlpLogRecord {
  resource: Record<string, OtlpValue>;
  scope: string;
  /** Nanoseconds since the epoch, as text (64 bits do not fit a number). */
  timeUnixNano: string;
  severityNumber: number;
  severityText: string;
  body: OtlpValue;
  attributes: Record<string, OtlpValue>;
}

interface AnyValueObject {
  string_value?: string;
  bool_value?: boolean;
  int_value?: string;
  double_value?: number;
  array_value?: { values?: AnyValueObject[] };
  kvlist_value?: { values?: KeyValueObject[] };
  bytes_value?: string;
}
interface KeyValueObject {
  key?: string;
  value?: AnyValueObject;
}
interface RequestObject {
  resource_logs?: {
    resource?: { attributes?: KeyValueObject[] };
    scope_logs?: {
      scope?: { name?: string };
      log_records?: {
        time_unix_nano?: string;
        severity_number?: number;
        severity_text?: string;
        body?: AnyValueObject;
        attributes?: KeyValueObject[];
      }[];
    }[];
  }[];
}

let requestType: protobuf.Type | undefined;

function anyValue(value: AnyValueObject | undefined): OtlpValue {
  if (value === undefined) return null;
  if (value.string_value !== undefined) return value.string_value;
  if (value.bool_value !== undefined) return value.bool_value;
  if (value.int_value !== undefined) return Number(value.int_value);
  if (value.double_value !== undefined) return value.double_value;
  if (value.array_value !== undefined) return (value.array_value.values ?? []).map(anyValue);
  if (value.kvlist_value !== undefined) return attributesOf(value.kvlist_value.values);
  if (value.bytes_value !== undefined) return value.bytes_value;
  return null;
}

function attributesOf(pairs: KeyValueObject[] | undefined): Record<string, OtlpValue> {
  const out: Record<string, OtlpValue> = {};
  for (const pair of pairs ?? []) out[pair.key ?? ''] = anyValue(pair.value);
  return out;
}

/** The records of one request, each with its resource's attributes and scope name; throws on bytes that are not such a request. */
export function decodeLogsRequest(bytes: Uint8Array): OtlpLogRecord[] {
  requestType ??= protobuf.parse(OTLP_LOGS_PROTO, { keepCase: true }).root.lookupType('otlp.ExportLogsServiceRequest');
  const message = requestType.decode(bytes);
  const request = requestType.toObject(message, { longs: String, bytes: String, oneofs: false }) as RequestObject;
  const records: OtlpLogRecord[] = [];
  for (const resourceLogs of request.resource_logs ?? []) {
    const resource = attributesOf(resourceLogs.resource?.attributes);
    for (const scopeLogs of resourceLogs.scope_logs ?? []) {
      const scope = scopeLogs.scope?.name ?? '';
      for (const record of scopeLogs.log_records ?? []) {
        records.push({
          resource,
          scope,
          timeUnixNano: record.time_unix_nano ?? '0',
          severityNumber: record.severity_number ?? 0,
          severityText: record.severity_text ?? '',
          body: anyValue(record.body),
          attributes: attributesOf(record.attributes),
        });
      }
    }
  }
  return records;
}
