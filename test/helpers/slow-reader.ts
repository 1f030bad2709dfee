import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { CLI } from './cli.js';

/**
 * Reads a stream as a slow consumer does (`twister2 submit job | (sleep 3; wc -l)`): nothing for
 * `delayMs`, then one chunk at a time with a pause after each, so the writer meets a full pipe often.
 * `onChunk` sees the data; nothing is kept here, so it can count hundreds of megabytes.
 */
export function readSlowly(stream: Readable, onChunk: (chunk: Buffer) => void, opts: { delayMs?: number; pauseMs?: number } = {}): Promise<void> {
  stream.pause();
  return new Promise((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => {
      onChunk(chunk);
      if (!opts.pauseMs) return;
      stream.pause();
      setTimeout(() => stream.resume(), opts.pauseMs);
    });
    stream.once('end', resolve);
    stream.once('error', reject);
    setTimeout(() => stream.resume(), opts.delayMs ?? 0);
  });
}

/**
 * Checks `[worker W] seq W N …` lines as output-worker.mjs prints them (as the CLI shows them, or untagged
 * as in the workers' logs): per worker, N must run 0, 1, 2…
 * without a gap or a repeat. Returns how many lines each worker got in order and the first line out of order.
 */
export class SequenceCheck {
  readonly counts = new Map<number, number>();
  firstError: string | undefined;
  private partial = '';

  add(chunk: Buffer): void {
    const lines = (this.partial + chunk.toString('latin1')).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) this.line(line);
  }

  private line(line: string): void {
    const m = /^(?:\[worker (\d+)\] )?seq (\d+) (\d+) x+$/.exec(line);
    if (!m) return;
    const [id, n] = [Number(m[2]), Number(m[3])];
    const tag = m[1] === undefined ? id : Number(m[1]);
    const expected = this.counts.get(tag) ?? 0;
    if (tag !== id || n !== expected) this.firstError ??= `worker ${tag}: expected seq ${expected}, got "${line.slice(0, 60)}"`;
    else this.counts.set(tag, expected + 1);
  }
}

/** The CLI with its stdout read slowly into `onChunk`; resolves with its exit code and stderr once both ended. */
export async function runCliSlowly(args: string[], home: string, onChunk: (chunk: Buffer) => void, opts: { delayMs?: number; pauseMs?: number; onStart?: (pid: number) => void } = {}): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, TWISTER2_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
  opts.onStart?.(child.pid!);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  await readSlowly(child.stdout, onChunk, opts);
  return { code: await closed, stderr };
}
