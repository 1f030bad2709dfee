import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startCli, waitFor, type RunningCli } from './cli.js';

export interface RunningDashboard {
  url: string;
  token: string;
  loginUrl: string;
  proc: RunningCli;
  /** GET (or any method) with the access token, parsed as JSON. */
  api<T = unknown>(p: string, init?: RequestInit): Promise<{ status: number; body: T }>;
  stop(): Promise<void>;
}

/** `twister2 dashboard` as a process of its own, on a free port; stopped by SIGTERM (by its PID). */
export async function startDashboard(home: string, opts: { host?: string; port?: number; dataDir?: string } = {}): Promise<RunningDashboard> {
  const args = ['dashboard', '--port', String(opts.port ?? 0), ...(opts.host ? ['--host', opts.host] : []), ...(opts.dataDir ? ['--data-dir', opts.dataDir] : [])];
  const proc = startCli(args, home);
  const loginUrl = await waitFor('the dashboard\'s login link', () => {
    if (proc.exitCode !== null) throw new Error(`twister2 dashboard exited ${proc.exitCode}: ${proc.output().stderr}`);
    return /^open (\S+)$/m.exec(proc.output().stdout)?.[1];
  }, 20_000);
  const url = new URL(loginUrl).origin;
  const token = readFileSync(path.join(opts.dataDir ?? path.join(home, 'dashboard'), 'token'), 'utf8').trim();
  return {
    url,
    token,
    loginUrl,
    proc,
    async api<T>(p: string, init: RequestInit = {}) {
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-twister2-dashboard': '1', ...(init.headers as Record<string, string> | undefined) };
      const res = await fetch(url + p, { ...init, headers });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    },
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await proc.closed;
    },
  };
}
