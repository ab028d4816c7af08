// Splits a child's output stream into log lines. Bounded: a line longer than
// `maxLength` is emitted in pieces, so a process that never prints a newline
// cannot make the worker buffer without limit.
import { StringDecoder } from 'node:string_decoder';

export const MAX_LINE_LENGTH = 16 * 1024;

export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  constructor(
    private readonly emit: (line: string) => void,
    private readonly maxLength = MAX_LINE_LENGTH,
  ) {}

  push(chunk: Buffer | string): void {
    this.pending += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    let start = 0;
    for (let newline = this.pending.indexOf('\n'); newline >= 0; newline = this.pending.indexOf('\n', start)) {
      this.emitLine(this.pending.slice(start, newline));
      start = newline + 1;
    }
    this.pending = this.pending.slice(start);
    while (this.pending.length > this.maxLength) {
      this.emitLine(this.pending.slice(0, this.maxLength));
      this.pending = this.pending.slice(this.maxLength);
    }
  }

  /** Emits what is left after the stream ended. */
  end(): void {
    this.pending += this.decoder.end();
    if (this.pending !== '') this.emitLine(this.pending);
    this.pending = '';
  }

  private emitLine(line: string): void {
    const text = line.endsWith('\r') ? line.slice(0, -1) : line;
    // Blank lines carry nothing worth a log record.
    if (text.trim() !== '') this.emit(text);
  }
}
