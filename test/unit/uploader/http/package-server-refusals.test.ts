import http from 'node:http';
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN, startServer, stopServers } from './helpers.js';

afterEach(stopServers);

const MiB = 1024 * 1024;

interface Answer {
  status: number;
  /** Whether the server sent `100 Continue`, and so how many body bytes the client sent. */
  continued: boolean;
  sent: number;
}

/** A PUT that waits for `100 Continue` before sending its body, as the HttpUploader does. */
function putExpectingContinue(base: string, name: string, token: string, size: number): Promise<Answer> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    let continued = false;
    let sent = 0;
    const req = http.request({
      host: u.hostname,
      port: u.port,
      method: 'PUT',
      path: `/packages/${name}`,
      agent: false,
      headers: { authorization: `Bearer ${token}`, 'content-length': String(size), expect: '100-continue' },
    });
    req.on('continue', () => {
      continued = true;
      sent = size;
      req.end(Buffer.alloc(size, 1));
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, continued, sent }));
    });
    req.on('error', reject);
  });
}

describe('package server: refused uploads', () => {
  it('answers a refused upload that expects 100-continue before its body is sent, and lets an accepted one go on', async () => {
    const { url, dir } = await startServer({ maxBytes: MiB });
    expect(await putExpectingContinue(url, 'ok', ADMIN, 1000)).toEqual({ status: 201, continued: true, sent: 1000 });
    expect(await putExpectingContinue(url, 'stranger', 'a-wrong-token-a-wrong-token', 1000)).toEqual({ status: 401, continued: false, sent: 0 });
    expect(await putExpectingContinue(url, 'big', ADMIN, 2 * MiB)).toEqual({ status: 413, continued: false, sent: 0 });
    expect(readdirSync(dir).sort()).toEqual(['ok', 'ok.meta.json']);
  });

  it('reads and discards the rest of a refused body sent without waiting, so its client finishes and reuses the connection', async () => {
    const { url } = await startServer({ maxBytes: MiB });
    const u = new URL(url);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const chunk = Buffer.alloc(MiB, 2);
    const errors: string[] = [];
    const first = await new Promise<{ status: number }>((resolve) => {
      const req = http.request({ host: u.hostname, port: u.port, method: 'PUT', path: '/packages/big', agent, headers: { authorization: `Bearer ${ADMIN}`, 'content-length': String(4 * MiB) } });
      req.on('error', (e) => errors.push(e.message));
      req.write(chunk);
      // The answer comes while three quarters of the body are still to be sent: the client sends them anyway.
      req.on('response', (res) => {
        res.resume();
        for (let i = 0; i < 3; i++) req.write(chunk);
        req.end();
        req.on('finish', () => res.on('end', () => resolve({ status: res.statusCode ?? 0 })));
      });
    });
    expect(first.status).toBe(413);
    const second = await new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, method: 'HEAD', path: '/packages/big', agent, headers: { authorization: `Bearer ${ADMIN}` } });
      req.on('error', reject);
      req.on('response', (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket });
      });
      req.end();
    });
    agent.destroy();
    expect(errors).toEqual([]);
    expect(second).toEqual({ status: 404, reused: true });
  });
});
