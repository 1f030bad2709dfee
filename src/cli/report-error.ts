import { ExitCode, Twister2Error } from '../errors.js';

/** Prints an error the way its kind deserves: user mistakes as one paragraph, bugs with their stack. */
export function report(err: unknown): number {
  if (Twister2Error.is(err)) {
    const e = err as Twister2Error;
    console.error(`twister2: ${e.message}${e.hint ? `\n${e.hint}` : ''}`);
    if (process.env.TWISTER2_DEBUG && e.stack) console.error(e.stack);
    return e.exitCode;
  }
  console.error(`twister2: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return ExitCode.infrastructure;
}
