import { spawn } from 'node:child_process';
import http from 'node:http';
import type { HealthCheck } from '../spec/schema.js';
import { commandArgv, describeCommand } from './program-runner.js';

/** worker.health as the runtime runs it (durations in ms): its port resolved to a number, with the command's directory and environment. */
export type HealthCheckData = Omit<HealthCheck, 'http'> & {
  http?: { port: number; path: string } | undefined;
  cwd: string;
  env: Record<string, string | undefined>;
};

/** How much of a failing command's output its reason quotes. */
const OUTPUT_TAIL_CHARS = 300;

/**
 * Runs worker.health next to the program: the first check `startPeriod` after the program started, then
 * one every `interval` after the last one finished. After `failureThreshold` failures in a row it calls
 * `onUnhealthy` once, with the last failure's reason, and checks no more. Runs on the heartbeat thread for
 * a module worker, so that a program that keeps the main thread busy is still checked.
 */
export class HealthChecker {
  private timer: NodeJS.Timeout;
  private failures = 0;
  private stopped = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly d: HealthCheckData,
    private readonly onUnhealthy: (reason: string) => void,
  ) {
    this.timer = setTimeout(() => void this.check(), d.startPeriod);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort.abort();
  }

  private async check(): Promise<void> {
    const why = await probe(this.d, this.abort.signal);
    if (this.stopped) return;
    this.failures = why === undefined ? 0 : this.failures + 1;
    if (why !== undefined && this.failures >= this.d.failureThreshold) {
      this.stopped = true;
      const times = this.failures === 1 ? 'once' : `${this.failures} times in a row`;
      this.onUnhealthy(`health check failed ${times}: ${why}`);
      return;
    }
    this.timer = setTimeout(() => void this.check(), this.d.interval);
  }
}

/** One check: undefined when healthy, else why not. */
export function probe(d: HealthCheckData, signal: AbortSignal): Promise<string | undefined> {
  return d.http ? httpProbe(d.http.port, d.http.path, d.timeout, signal) : commandProbe(d.command!, d, signal);
}

function commandProbe(cmd: string | string[], d: HealthCheckData, signal: AbortSignal): Promise<string | undefined> {
  const shown = describeCommand(cmd);
  const [file, args] = commandArgv(cmd);
  // A group of its own: a check that overruns is ended with everything it started.
  const child = spawn(file, args, { cwd: d.cwd, env: d.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  return new Promise((resolve) => {
    let ended = false;
    const end = (why: string | undefined) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      killGroup(child.pid);
      resolve(why);
    };
    const onAbort = () => end('stopped');
    const timer = setTimeout(() => end(`"${shown}" did not finish within ${d.timeout} ms`), d.timeout);
    signal.addEventListener('abort', onAbort, { once: true });
    child.once('error', (err) => end(`cannot run "${shown}": ${err.message}`));
    child.once('close', (code, sig) => {
      const tail = output.trim().split('\n').at(-1)?.trim();
      end(code === 0 ? undefined : `"${shown}" ${sig ? `was killed by ${sig}` : `exited with code ${code}`}${tail ? ` (${tail})` : ''}`);
    });
  });
}

function killGroup(pid: number | undefined): void {
  try {
    if (pid) process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

function httpProbe(port: number, path: string, timeoutMs: number, signal: AbortSignal): Promise<string | undefined> {
  const url = `http://127.0.0.1:${port}${path}`;
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, signal }, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      done(status >= 200 && status < 400 ? undefined : `GET ${url} answered ${status}`);
    });
    const timer = setTimeout(() => {
      done(`GET ${url} did not answer within ${timeoutMs} ms`);
      req.destroy();
    }, timeoutMs);
    req.once('error', (err) => done(`GET ${url} failed: ${err.message}`));
    let answered = false;
    function done(why: string | undefined): void {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      resolve(why);
    }
  });
}
