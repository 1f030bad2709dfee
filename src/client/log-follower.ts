import { open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';

export interface LogLine {
  workerId: number;
  line: string;
}

const LOG_FILE = /^worker-(\d+)\.log$/;

/**
 * Reads the workers' log files of a job directory, tagged by worker ID. With `until`, keeps following
 * them (including files of workers added later) until the promise settles, then drains what is left.
 */
export async function* followLogs(logDir: string, opts: { until?: Promise<unknown>; pollMs?: number; signal?: AbortSignal } = {}): AsyncGenerator<LogLine> {
  const offsets = new Map<string, number>();
  const partial = new Map<string, string>();
  // A read may end inside a multi-byte character; a decoder per file keeps it for the next read.
  const decoders = new Map<string, StringDecoder>();
  let finished = opts.until === undefined;
  opts.until?.then(() => (finished = true), () => (finished = true));
  for (;;) {
    const last = finished || opts.signal?.aborted === true;
    let names: string[] = [];
    try {
      names = (await readdir(logDir)).filter((n) => LOG_FILE.test(n));
    } catch {
      // Not created yet.
    }
    names.sort((a, b) => idOf(a) - idOf(b));
    for (const name of names) {
      if (!decoders.has(name)) decoders.set(name, new StringDecoder('utf8'));
      const text = decoders.get(name)!.write(await readFrom(path.join(logDir, name), offsets, name));
      if (!text) continue;
      const lines = ((partial.get(name) ?? '') + text).split('\n');
      partial.set(name, lines.pop() ?? '');
      for (const line of lines) yield { workerId: idOf(name), line };
    }
    if (last) {
      for (const [name, rest] of partial) if (rest) yield { workerId: idOf(name), line: rest };
      return;
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
}

function idOf(name: string): number {
  return Number(LOG_FILE.exec(name)?.[1] ?? -1);
}

async function readFrom(file: string, offsets: Map<string, number>, key: string): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const start = offsets.get(key) ?? 0;
    const { size } = await fh.stat();
    if (size <= start) return Buffer.alloc(0);
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    offsets.set(key, size);
    return buf;
  } finally {
    await fh.close();
  }
}
