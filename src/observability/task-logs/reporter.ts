// One task's log export: output lines (and setup-phase events) become OTLP log
// records through the OpenTelemetry logs SDK, batched (5 s or 128 records, a
// queue of 1024, 5 s per export) and sent by `CollectorTransport`. Writing never
// waits for the network: when the queue is full, records are dropped. Loaded
// with a dynamic import, only for a task whose assignment asks for logs.
import { SeverityNumber } from '@opentelemetry/api';
import { createOtlpNetworkExportDelegate, ExporterMetrics, OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { LogsExporterMetricsHelper, ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import type { Logger as SdkLogger } from '@opentelemetry/api';
import type { Logger } from '../../log/logger.js';
import type { TaskLogWriter } from '../../task/contract.js';
import type { TaskLogReporter, TaskLogTarget } from './target.js';
import { CollectorTransport } from './collector-transport.js';
import type { HttpPoster } from '../http-post.js';
import { IdentityTokenSource } from './identity-token.js';
import { LineWriter } from './line-writer.js';
import { MAX_OUTPUT_BYTES, Redactor } from './redaction.js';

export const SCOPE_NAME = 'oz-agent-worker.task';
export const SERVICE_NAME = 'oz-agent-worker';
export const EXPORT_INTERVAL_MS = 5_000;
export const MAX_EXPORT_BATCH = 128;
export const MAX_QUEUE = 1024;
export const EXPORT_TIMEOUT_MS = 5_000;
export const MAX_WRITERS = 128;

const SILENT: TaskLogWriter = { write() {}, end() {} };

// The collector's signal is anything that carries the OTLP logs protobuf: an `unknown` internal type keeps the SDK's generics quiet.
type LogsSerializer = typeof ProtobufLogsSerializer;

export interface ReporterOptions {
  target: TaskLogTarget;
  /** Values redacted from every record: the task's env values, the worker's key, the bootstrap token. */
  secrets: Iterable<string>;
  workerId: string;
  backend: string;
  /** The worker's poster (its proxy, CA and connections). */
  poster: HttpPoster;
  log: Logger;
}

/** RFC 3339 with the fraction Go's RFC3339Nano writes (trailing zeros trimmed), in UTC. */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.(\d*?)0*Z$/, (_, digits: string) => (digits ? `.${digits}Z` : 'Z'));
}

export class OtlpTaskLogReporter implements TaskLogReporter {
  private readonly redactor = new Redactor();
  private readonly closing = new AbortController();
  /** Ends calls still in flight once the final flush ran out of time. */
  private readonly cutOff = new AbortController();
  readonly closed = this.closing.signal;
  private readonly provider: LoggerProvider;
  private readonly logger: SdkLogger;
  private readonly tokens: IdentityTokenSource;
  private readonly open = new Set<LineWriter>();
  private writersMade = 0;
  private failureLogged = false;
  private shutdownDone: Promise<void> | undefined;

  constructor(options: ReporterOptions) {
    const { target, log } = options;
    this.redactor.add(options.secrets);
    this.tokens = new IdentityTokenSource({
      serverRootUrl: target.serverRootUrl,
      apiKey: target.apiKey,
      workloadToken: target.workloadToken,
      taskId: target.taskId,
      poster: options.poster,
      // Stricter than the Go worker: an issued token is a secret of the task too.
      onIssued: (token) => this.redactor.add([token]),
    });
    const transport = new CollectorTransport({
      url: target.collectorUrl,
      tokens: this.tokens,
      poster: options.poster,
      abort: this.cutOff.signal,
      onFailure: (reason) => {
        if (this.failureLogged) return;
        this.failureLogged = true;
        log.warn(`Task log export failed: ${reason}; records that cannot be sent are dropped`);
      },
    });
    const serializer: LogsSerializer = ProtobufLogsSerializer;
    const metrics = new ExporterMetrics<ReadableLogRecord[]>({
      componentType: 'otlp_http_log_exporter',
      metricsHelper: LogsExporterMetricsHelper,
      url: target.collectorUrl,
      meterProvider: undefined,
      responseAttributesFromError: () => ({}),
    });
    const exporter = new OTLPExporterBase<ReadableLogRecord[]>(
      createOtlpNetworkExportDelegate({ timeoutMillis: EXPORT_TIMEOUT_MS, concurrencyLimit: 2, compression: 'none' }, serializer, metrics, transport),
    );
    this.provider = new LoggerProvider({
      resource: resourceFromAttributes({
        'service.name': SERVICE_NAME,
        'worker.id': options.workerId,
        'worker.backend': options.backend,
        run_id: target.taskId,
        execution_id: target.executionId,
      }),
      processors: [
        new BatchLogRecordProcessor({
          exporter,
          scheduledDelayMillis: EXPORT_INTERVAL_MS,
          maxExportBatchSize: MAX_EXPORT_BATCH,
          maxQueueSize: MAX_QUEUE,
          exportTimeoutMillis: EXPORT_TIMEOUT_MS,
        }),
      ],
    });
    this.logger = this.provider.getLogger(SCOPE_NAME);
  }

  /** Identity calls made so far (tests). */
  get identityCalls(): number {
    return this.tokens.calls;
  }

  writer(source: string, attributes: Readonly<Record<string, string>> = {}): TaskLogWriter {
    if (this.closed.aborted || this.writersMade >= MAX_WRITERS) return SILENT;
    this.writersMade++;
    const recordAttributes = { ...attributes, 'log.source': source };
    const lines = new LineWriter((line) => this.emitLine(line, recordAttributes));
    this.open.add(lines);
    return {
      write: (chunk) => lines.write(chunk),
      end: () => {
        lines.end();
        this.open.delete(lines);
      },
    };
  }

  redact(values: Iterable<string>): void {
    this.redactor.add(values);
  }

  private emitLine(line: string, attributes: Record<string, string>): void {
    if (this.shutdownDone) return;
    this.emit(this.redactor.redactLine(line), attributes);
  }

  /** A setup phase as a record (the Go worker's `Event`): body the event name; not redacted, it holds no task data. */
  event(name: string, start: Date, finish: Date, isError: boolean): void {
    if (this.shutdownDone) return;
    this.emit(name, {
      'event.name': name,
      start_ts: rfc3339(start),
      finish_ts: rfc3339(finish),
      latency_ms: finish.getTime() - start.getTime(),
      is_error: isError,
    });
  }

  private emit(body: string, attributes: Record<string, string | number | boolean>): void {
    this.logger.emit({
      timestamp: new Date(),
      severityNumber: SeverityNumber.INFO,
      severityText: 'info',
      body: Buffer.byteLength(body) > MAX_OUTPUT_BYTES ? Buffer.from(body).subarray(0, MAX_OUTPUT_BYTES).toString('utf8') : body,
      attributes,
    });
  }

  /** Sends what is queued, waiting at most `timeoutMs`; never throws. */
  async flush(timeoutMs = EXPORT_TIMEOUT_MS): Promise<void> {
    if (this.shutdownDone) return;
    await within(this.provider.forceFlush(), timeoutMs);
  }

  /**
   * The end of the task's export: streams feeding it stop, open writers give
   * their last partial line, what is queued is sent within `timeoutMs`; later
   * records are dropped. Idempotent (the first call's bound holds).
   */
  shutdown(timeoutMs = EXPORT_TIMEOUT_MS): Promise<void> {
    this.shutdownDone ??= (async () => {
      this.closing.abort();
      for (const lines of this.open) lines.end();
      this.open.clear();
      const done = await within(this.provider.shutdown(), timeoutMs);
      // Out of time: calls still in flight end now, and the rest of the queue is dropped.
      if (!done) this.cutOff.abort();
    })();
    // Records written from here on are dropped; the ones written before go out in the shutdown.
    return this.shutdownDone;
  }
}

/** Whether `work` settled within `ms` (it keeps running either way); never throws. */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
    timer.unref();
  });
  try {
    return await Promise.race([
      work.then(
        () => true as const,
        () => true as const,
      ),
      expired,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
