// Structured JSON logs (pino). Secrets never reach a log line: the API key and
// every task env value are redacted by path, and frames are never dumped raw.
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';
import { LogDestination } from './destination.js';

export type Logger = PinoLogger;
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Paths whose values are replaced wherever they appear in a log object. */
export const REDACTED_PATHS = [
  'apiKey',
  'api_key',
  'authorization',
  'headers.authorization',
  'env_vars',
  '*.env_vars',
  'data.env_vars',
  'env',
  '*.env',
  'operatorEnv',
  'taskEnv',
  'WARP_API_KEY',
];

/**
 * Known secret values (the API key, each task's env values). Every log line is
 * scrubbed of them just before it is written, so a secret printed by the agent
 * or quoted inside an error message is caught too.
 */
export class SecretScrubber {
  private readonly counts = new Map<string, number>();
  private pattern: RegExp | undefined;

  /** Registers values; short values are skipped so ordinary words stay readable. */
  add(values: Iterable<string>): void {
    for (const value of values) {
      if (value.length < 6) continue;
      this.counts.set(value, (this.counts.get(value) ?? 0) + 1);
    }
    this.pattern = undefined;
  }

  remove(values: Iterable<string>): void {
    for (const value of values) {
      const count = this.counts.get(value);
      if (count === undefined) continue;
      if (count <= 1) this.counts.delete(value);
      else this.counts.set(value, count - 1);
    }
    this.pattern = undefined;
  }

  scrub(line: string): string {
    if (this.counts.size === 0) return line;
    this.pattern ??= new RegExp(
      [...this.counts.keys()]
        .flatMap((v) => [v, JSON.stringify(v).slice(1, -1)])
        .sort((a, b) => b.length - a.length)
        .map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('|'),
      'g',
    );
    return line.replace(this.pattern, '[redacted]');
  }
}

export interface LoggerOptions {
  level: LogLevel;
  scrubber?: SecretScrubber;
  /** Pretty, human-oriented output (when stdout is a terminal). */
  pretty?: boolean;
  destination?: DestinationStream;
  /** NO_COLOR (https://no-color.org) turns colours off in pretty output. */
  env?: Readonly<Record<string, string | undefined>>;
}

export async function createLogger(options: LoggerOptions): Promise<Logger> {
  const base = {
    level: options.level,
    base: { pid: process.pid },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    hooks: options.scrubber ? { streamWrite: (line: string) => options.scrubber!.scrub(line) } : {},
  };
  if (options.pretty && !options.destination) {
    const { default: pretty } = await import('pino-pretty');
    const prettyFactory = (pretty as unknown as { prettyFactory: typeof import('pino-pretty').prettyFactory }).prettyFactory;
    // One record, one terminal line: an agent's output line stays one line, prefixed with its task.
    const prettify = prettyFactory({
      colorize: !(options.env ?? process.env).NO_COLOR,
      translateTime: 'HH:MM:ss.l',
      ignore: 'pid,hostname,taskId,stream',
      messageFormat: '{if taskId}[{taskId}] {end}{msg}',
      singleLine: true,
    });
    const destination = new LogDestination(1);
    return pino(base, {
      write: (line: string) => destination.write(prettify(line)),
      flush: (callback: (error?: Error) => void) => destination.flush(callback),
    } as DestinationStream);
  }
  return pino(base, options.destination ?? new LogDestination(1));
}

/** A logger that drops everything (tests, pure callers). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
