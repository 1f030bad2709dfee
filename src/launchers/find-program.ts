import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** The program's path when it can be run: a path as given, or a name found on PATH. */
export function findProgram(program: string, envPath: string = process.env.PATH ?? ''): string | undefined {
  const candidates = program.includes('/') ? [program] : envPath.split(path.delimiter).filter(Boolean).map((d) => path.join(d, program));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // Not here.
    }
  }
  return undefined;
}
