import { open } from 'node:fs/promises';
import { FileTail } from '../launchers/file-tail.js';

/** How far back the first lines are looked for: enough for a tail of a few hundred ordinary lines. */
const BACK_BYTES = 256 * 1024;

/**
 * The last `count` complete lines of a file, and the offset just past them, from where to follow it.
 * A missing file has none (a worker that has not printed yet).
 */
export async function lastLines(file: string, count: number): Promise<{ lines: string[]; end: number }> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    return { lines: [], end: 0 };
  }
  try {
    const size = (await fh.stat()).size;
    const start = Math.max(0, size - BACK_BYTES);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    const lastNewline = buf.lastIndexOf(0x0a);
    if (lastNewline < 0) return { lines: [], end: start };
    let lines = buf.subarray(0, lastNewline).toString('utf8').split('\n');
    if (start > 0) lines = lines.slice(1); // the first is cut
    return { lines: lines.slice(-count), end: start + lastNewline + 1 };
  } finally {
    await fh.close();
  }
}

/** Follows a log file from `from`, line by line, until `stop` is called (which reads what is left). */
export function followFile(file: string, from: number, onLine: (line: string) => void): { stop(): Promise<void> } {
  const tail = new FileTail(file, onLine, { from, pollMs: 200 });
  tail.start();
  return { stop: () => tail.stop() };
}
