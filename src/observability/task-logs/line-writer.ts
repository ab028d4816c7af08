// Turns one output stream, in whatever chunks it arrives, into the lines that
// become log records, by the Go worker's rules (internal/tasklogs/writer.go):
// split on `\n` only (`\r` stays), no empty lines, and a line longer than 64 KiB
// is dropped whole at its newline — never exported as a cut prefix, which could
// end in the first half of a secret.

export const MAX_LINE_BYTES = 64 * 1024;

export class LineWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The current line grew past the limit: everything up to its newline is dropped. */
  private discarding = false;
  private ended = false;

  constructor(private readonly emit: (line: string) => void) {}

  write(chunk: Buffer | string): void {
    if (this.ended) return;
    let data = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    for (let newline = data.indexOf(0x0a); newline >= 0; newline = data.indexOf(0x0a)) {
      this.append(data.subarray(0, newline));
      this.endLine();
      data = data.subarray(newline + 1);
    }
    this.append(data);
  }

  /** The stream ended: its unterminated last line (unless dropped) goes out. Later writes are ignored. */
  end(): void {
    if (this.ended) return;
    this.endLine();
    this.ended = true;
  }

  private append(part: Buffer): void {
    if (this.discarding || part.length === 0) return;
    if (this.pendingBytes + part.length > MAX_LINE_BYTES) {
      this.discarding = true;
      this.pending = [];
      this.pendingBytes = 0;
      return;
    }
    // Copied: the caller may reuse its buffer.
    this.pending.push(Buffer.from(part));
    this.pendingBytes += part.length;
  }

  private endLine(): void {
    const line = this.pendingBytes > 0 && !this.discarding ? Buffer.concat(this.pending, this.pendingBytes).toString('utf8') : '';
    this.pending = [];
    this.pendingBytes = 0;
    this.discarding = false;
    if (line !== '') this.emit(line);
  }
}
