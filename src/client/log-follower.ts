import { open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { LineSplitter } from '../line-splitter.js';

export interface LogLine {
  /** The worker's ID, or 'driver' for the job's driver (logs/driver.log). */
  workerId: number | 'driver';
  line: string;
}

const LOG_FILE = /^worker-(\d+)\.log$|^driver\.log$/;
/** Bytes read from a file at a time: what a reader holds of a log, however much the workers print. */
const CHUNK_BYTES = 256 * 1024;
/** Chunks read from one file before the others get their turn, so one busy worker does not starve the rest. */
const CHUNKS_PER_TURN = 4;
/** Where the reading of one worker's log file stands. */
interface FileState {
  offset: number;
  lines: LineSplitter;
}

/**
 * Reads the workers' (and the driver's) log files of a job directory, tagged by worker ID. With `until`, keeps following
 * them (including files of workers added later) until the promise settles, then drains what is left.
 * Pull-driven: a file is read a chunk at a time, only as fast as the consumer takes the lines, so memory
 * stays bounded whatever the workers print. Each worker's lines come complete and in order.
 */
export async function* followLogs(logDir: string, opts: { until?: Promise<unknown>; pollMs?: number; signal?: AbortSignal } = {}): AsyncGenerator<LogLine> {
  const states = new Map<string, FileState>();
  const buf = Buffer.allocUnsafe(CHUNK_BYTES); // one for every read: what is read is decoded into strings at once
  let finished = opts.until === undefined;
  opts.until?.then(() => (finished = true), () => (finished = true));
  let last = false;
  for (;;) {
    // Once the job ended (or the reader gave up), read every file to its end, then stop.
    last ||= finished || opts.signal?.aborted === true;
    let names: string[] = [];
    try {
      names = (await readdir(logDir)).filter((n) => LOG_FILE.test(n));
    } catch {
      // Not created yet.
    }
    names.sort((a, b) => order(a) - order(b));
    let more = false;
    for (const name of names) {
      let state = states.get(name);
      if (!state) states.set(name, (state = { offset: 0, lines: new LineSplitter() }));
      for (let chunk = 0; ; chunk++) {
        if (chunk === CHUNKS_PER_TURN) {
          more = true;
          break;
        }
        const lines = await readChunk(path.join(logDir, name), state, buf);
        if (!lines) break;
        for (const line of lines) yield { workerId: idOf(name), line };
      }
    }
    if (more) continue;
    if (last) {
      for (const [name, s] of states) {
        const rest = s.lines.end();
        if (rest !== undefined) yield { workerId: idOf(name), line: rest };
      }
      return;
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
}

/**
 * The complete lines the next chunk of a file finishes, or undefined at its end. The file is not kept
 * open while the consumer takes the lines: a reader that stops early leaves nothing open.
 */
async function readChunk(file: string, state: FileState, buf: Buffer): Promise<string[] | undefined> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const { bytesRead } = await fh.read(buf, 0, buf.length, state.offset);
    if (bytesRead === 0) return undefined;
    state.offset += bytesRead;
    return state.lines.push(buf.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

function idOf(name: string): number | 'driver' {
  const id = LOG_FILE.exec(name)?.[1];
  return id === undefined ? 'driver' : Number(id);
}

/** The driver's log first, then the workers' by ID. */
function order(name: string): number {
  const id = idOf(name);
  return id === 'driver' ? -1 : id;
}
