import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { HealthChecker, probe, type HealthCheckData } from '../../../src/worker/health-check.js';

const base = { cwd: os.tmpdir(), env: process.env, interval: 20, timeout: 1000, failureThreshold: 3, startPeriod: 0 };
const check = (d: Partial<HealthCheckData>) => probe({ ...base, ...d }, new AbortController().signal);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitUntil(ok: () => boolean): Promise<void> {
  for (const deadline = Date.now() + 10_000; !ok(); ) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('worker health checks', () => {
  it('a command is healthy when it exits 0; otherwise the reason quotes its last line of output', async () => {
    await expect(check({ command: 'exit 0' })).resolves.toBeUndefined();
    await expect(check({ command: ['sh', '-c', 'echo checking; echo "disk full" >&2; exit 3'] })).resolves.toBe('"sh -c echo checking; echo "disk full" >&2; exit 3" exited with code 3 (disk full)');
    await expect(check({ command: ['/no/such/check'] })).resolves.toMatch(/^cannot run "\/no\/such\/check": .*ENOENT/);
  });

  it('a command that overruns its timeout fails, and is ended with what it started', async () => {
    const file = `${os.tmpdir()}/t2-health-sleep-${process.pid}-${Date.now()}`;
    const why = await check({ command: `sleep 30 & echo $! > ${file}; wait`, timeout: 300 });
    expect(why).toBe(`"sleep 30 & echo $! > ${file}; wait" did not finish within 300 ms`);
    const sleeper = Number(readFileSync(file, 'utf8'));
    await waitUntil(() => !alive(sleeper));
  });

  it('an http check is healthy on 200-399, and says what it got otherwise', async () => {
    let status = 204;
    const server = http.createServer((_req, res) => {
      res.statusCode = status;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      await expect(check({ http: { port, path: '/ok' } })).resolves.toBeUndefined();
      status = 503;
      await expect(check({ http: { port, path: '/ok' } })).resolves.toBe(`GET http://127.0.0.1:${port}/ok answered 503`);
    } finally {
      await new Promise((r) => server.close(r));
    }
    await expect(check({ http: { port, path: '/' } })).resolves.toMatch(new RegExp(`^GET http://127.0.0.1:${port}/ failed: .*ECONNREFUSED`));
  });

  it('tells once, after failureThreshold failures in a row; a success in between starts the count again', async () => {
    // Fails, fails, passes, then fails for good: told at the 6th check, not the 2nd.
    const script = 'n=$(cat "$F" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$F"; [ $n -eq 3 ]';
    const file = `${os.tmpdir()}/t2-health-${process.pid}-${Date.now()}`;
    const told: string[] = [];
    const checker = new HealthChecker({ ...base, env: { ...process.env, F: file }, command: script, failureThreshold: 3 }, (r) => told.push(r));
    await waitUntil(() => told.length > 0);
    // Told after the 6th check, and no check after it.
    await new Promise((r) => setTimeout(r, 200));
    checker.stop();
    expect(told).toHaveLength(1);
    expect(told[0]).toMatch(/^health check failed 3 times in a row: ".*" exited with code 1$/);
    expect(readFileSync(file, 'utf8').trim()).toBe('6');
  });

  it('stops checking when stopped', async () => {
    const told: string[] = [];
    const checker = new HealthChecker({ ...base, command: 'exit 1', failureThreshold: 1, startPeriod: 200 }, (r) => told.push(r));
    checker.stop();
    await new Promise((r) => setTimeout(r, 400));
    expect(told).toEqual([]);
  });
});
