// Go `time.Duration` text, both ways, so config values such as
// `dispatch_timeout: 1m30s` mean exactly what they meant to the Go worker.
// Grammar: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+ , or a bare "0".

const NS_PER_UNIT: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['\u00b5s', 1_000n], // µ (micro sign)
  ['\u03bcs', 1_000n], // μ (Greek mu)
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

const MAX_NS = (1n << 63n) - 1n;

/** A string Go's `time.ParseDuration` would refuse; the message is Go's own text. */
export class InvalidDurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidDurationError';
  }
}

const quote = (text: string): string => JSON.stringify(text);

/** Parses a Go duration string into nanoseconds (exact). */
export function parseGoDurationNs(text: string): bigint {
  const invalid = (): InvalidDurationError => new InvalidDurationError(`time: invalid duration ${quote(text)}`);
  let rest = text;
  let negative = false;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    negative = rest.startsWith('-');
    rest = rest.slice(1);
  }
  if (rest === '0') return 0n;
  if (rest === '') throw invalid();

  let total = 0n;
  while (rest !== '') {
    const number = /^(\d*)(?:\.(\d*))?/.exec(rest);
    const whole = number?.[1] ?? '';
    const fraction = number?.[2];
    if (whole === '' && (fraction === undefined || fraction === '')) throw invalid();
    rest = rest.slice(number?.[0].length ?? 0);

    const unitLength = rest.search(/[0-9.]/);
    const unit = unitLength === -1 ? rest : rest.slice(0, unitLength);
    if (unit === '') throw new InvalidDurationError(`time: missing unit in duration ${quote(text)}`);
    rest = rest.slice(unit.length);
    const scale = NS_PER_UNIT.get(unit);
    if (scale === undefined) throw new InvalidDurationError(`time: unknown unit ${quote(unit)} in duration ${quote(text)}`);

    let part = BigInt(whole === '' ? '0' : whole) * scale;
    if (fraction) part += (BigInt(fraction) * scale) / 10n ** BigInt(fraction.length);
    total += part;
    if (total > MAX_NS) throw invalid();
  }
  return negative ? -total : total;
}

/** Parses a Go duration string into milliseconds (fractional below 1 ms). */
export function parseGoDuration(text: string): number {
  const ns = parseGoDurationNs(text);
  // Whole milliseconds exactly, then the sub-millisecond rest.
  return Number(ns / 1_000_000n) + Number(ns % 1_000_000n) / 1e6;
}

/** Formats milliseconds the way Go's `Duration.String` does: `1m30s`, `1h0m0s`, `50ms`, `0s`. */
export function formatGoDuration(ms: number): string {
  const whole = Math.trunc(ms);
  const ns = BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6));
  const sign = ns < 0n ? '-' : '';
  const abs = ns < 0n ? -ns : ns;
  if (abs === 0n) return '0s';
  if (abs < 1_000n) return `${sign}${abs}ns`;
  if (abs < 1_000_000n) return `${sign}${fractional(abs, 3)}\u00b5s`;
  if (abs < 1_000_000_000n) return `${sign}${fractional(abs, 6)}ms`;

  const seconds = fractional(abs % 60_000_000_000n, 9);
  const totalMinutes = abs / 60_000_000_000n;
  if (totalMinutes === 0n) return `${sign}${seconds}s`;
  const hours = totalMinutes / 60n;
  const minutes = totalMinutes % 60n;
  return hours === 0n ? `${sign}${minutes}m${seconds}s` : `${sign}${hours}h${minutes}m${seconds}s`;
}

/** `value / 10^digits` as a decimal with trailing zeros (and a bare point) dropped. */
function fractional(value: bigint, digits: number): string {
  const divisor = 10n ** BigInt(digits);
  const whole = value / divisor;
  const fraction = (value % divisor).toString().padStart(digits, '0').replace(/0+$/, '');
  return fraction === '' ? `${whole}` : `${whole}.${fraction}`;
}
