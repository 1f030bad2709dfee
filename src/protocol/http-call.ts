import http from 'node:http';
import type https from 'node:https';

/**
 * The job master's HTTP calls on node's own http module, for workers above all: every worker pays for
 * what its wire client loads at start, and got (with its 22 dependencies) or undici's fetch cost more CPU
 * than the rest of a worker's start-up. Keep-alive, a timeout per call, nothing else.
 */

export interface HttpAnswer {
  status: number;
  text: string;
}

export interface HttpCallOptions {
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: unknown;
  /** Gives up after this long without the whole answer; 0 or undefined: no limit (long polls). */
  timeoutMs?: number | undefined;
  agent?: http.Agent | https.Agent | undefined;
  signal?: AbortSignal | undefined;
}

const sharedAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

/** One request with a JSON body (if any); resolves with the status and the whole answer as text. */
export async function httpCall(url: string, o: HttpCallOptions): Promise<HttpAnswer> {
  const req = await startRequest(url, o);
  return new Promise((resolve, reject) => {
    const timer = o.timeoutMs && o.timeoutMs > 0 ? setTimeout(() => req.destroy(new Error(`no answer within ${o.timeoutMs} ms`)), o.timeoutMs) : undefined;
    const fail = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    req.once('error', fail);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', fail);
      res.once('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
  });
}

/** An answer's JSON, or undefined when it is not JSON (a proxy's error page, an empty body). */
export function jsonOf(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A GET whose answer is read as a stream (the event stream); resolves once the status line arrived. */
export async function openStream(url: string, o: Omit<HttpCallOptions, 'method' | 'body' | 'timeoutMs'>): Promise<http.IncomingMessage> {
  const req = await startRequest(url, { ...o, method: 'GET' });
  return new Promise((resolve, reject) => {
    req.once('error', reject);
    req.once('response', resolve);
  });
}

/** The `data` of each Server-Sent Event: blocks separated by a blank line, the payload in `data:` lines. */
export async function* serverSentData(body: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  let buffered = '';
  for await (const chunk of body) {
    buffered += chunk.toString().replace(/\r/g, '');
    for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
      const data = buffered
        .slice(0, end)
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      buffered = buffered.slice(end + 2);
      if (data) yield data;
    }
  }
}

async function startRequest(url: string, o: HttpCallOptions): Promise<http.ClientRequest> {
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
  const headers = payload === undefined ? o.headers : { ...o.headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) };
  // TLS only for a job master behind the Kubernetes API server's proxy: loaded then, not by every worker.
  const secure = url.startsWith('https:');
  const mod = secure ? await import('node:https') : http;
  const req = mod.request(url, { method: o.method, headers, agent: o.agent ?? (secure ? undefined : sharedAgent), ...(o.signal ? { signal: o.signal } : {}) });
  req.end(payload);
  return req;
}
