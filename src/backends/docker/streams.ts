// Decoders for the Engine API's two streaming formats. Pure and incremental:
// chunks may split a frame or a JSON line anywhere.

export type LogStream = 'stdout' | 'stderr';

const HEADER_BYTES = 8;

/**
 * Splits a non-TTY container log stream into its frames: an 8-byte header
 * (stream byte, three zero bytes, big-endian payload length) before each
 * payload. Stdin frames (stream 0) count as stdout, as Docker's own client does.
 */
export class LogDemuxer {
  private buffered: Buffer = Buffer.alloc(0);
  private remaining = 0;
  private stream: LogStream = 'stdout';

  constructor(private readonly emit: (stream: LogStream, data: Buffer) => void) {}

  push(chunk: Buffer): void {
    let data = this.buffered.length > 0 ? Buffer.concat([this.buffered, chunk]) : chunk;
    this.buffered = Buffer.alloc(0);
    while (data.length > 0) {
      if (this.remaining > 0) {
        // Payloads are passed on as they arrive, so a huge frame is never held whole.
        const part = data.subarray(0, this.remaining);
        this.remaining -= part.length;
        data = data.subarray(part.length);
        this.emit(this.stream, part);
        continue;
      }
      if (data.length < HEADER_BYTES) {
        this.buffered = Buffer.from(data);
        return;
      }
      this.stream = data[0] === 2 ? 'stderr' : 'stdout';
      this.remaining = data.readUInt32BE(4);
      data = data.subarray(HEADER_BYTES);
    }
  }
}

/** One line of the pull progress stream. */
export interface PullEvent {
  status?: string;
  id?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string; code?: number };
}

const MAX_JSON_LINE = 1024 * 1024;

/** Parses newline-delimited JSON objects (the pull and build progress format). */
export class JsonLines {
  private pending = '';

  constructor(private readonly emit: (event: PullEvent) => void) {}

  push(chunk: Buffer | string): void {
    this.pending += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    let newline: number;
    while ((newline = this.pending.indexOf('\n')) >= 0) {
      this.line(this.pending.slice(0, newline));
      this.pending = this.pending.slice(newline + 1);
    }
    // A daemon never sends a line this long; drop it rather than grow without bound.
    if (this.pending.length > MAX_JSON_LINE) this.pending = '';
  }

  end(): void {
    this.line(this.pending);
    this.pending = '';
  }

  private line(text: string): void {
    const trimmed = text.trim();
    if (trimmed === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      return;
    }
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) this.emit(parsed as PullEvent);
  }
}

/** The error a pull reported inside its (200 OK) progress stream, if any. */
export function pullEventError(event: PullEvent): string | undefined {
  const message = event.errorDetail?.message || event.error;
  return message ? message : undefined;
}

/** Whether an event is a step worth a debug line (not a byte-count update). */
export function isPullMilestone(event: PullEvent): boolean {
  return event.status !== undefined && event.progressDetail?.current === undefined;
}
