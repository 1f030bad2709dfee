import { UsageError } from '../errors.js';
import { MAX_WORKERS } from '../spec/schema.js';

/**
 * Numbers from the command line. yargs' own number type reads "0x10" as 16, "1e9" as a billion and a
 * bare flag or "abc" as NaN, so numeric flags are taken as strings and read here: plain decimal digits
 * only, and every error names the flag, what it got and what it takes.
 */
export function wholeNumberFlag(flag: string, raw: unknown, range: { min: number; max: number; example: string }): number {
  const expected = `a whole number from ${range.min} to ${range.max}, e.g. \`${range.example}\``;
  if (Array.isArray(raw)) throw new UsageError(`${flag} was given ${raw.length} times (${raw.join(', ')}); give it once, as ${expected}`);
  const text = String(raw ?? '').trim();
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} ${JSON.stringify(String(raw ?? ''))} is not a whole number in decimal digits; give ${expected}`);
  const n = Number(text);
  if (n < range.min || n > range.max) throw new UsageError(`${flag} ${text} is out of range; give ${expected}`);
  return n;
}

/** `flag` names the argument in messages; `example` shows it used. */
export function workersFlag(flag: string, raw: unknown, example: string): number {
  return wholeNumberFlag(flag, raw, { min: 1, max: MAX_WORKERS, example });
}
