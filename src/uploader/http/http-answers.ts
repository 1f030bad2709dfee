import type http from 'node:http';

/** How the package server answers: errors that carry their HTTP status, and small JSON bodies. */

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** How long a refused upload may keep sending before its connection is cut. */
const LINGER_MS = 2000;

export const unauthorized = () =>
  new HttpError(401, 'T2_UNAUTHENTICATED', 'missing or wrong token (Authorization: Bearer <token>)', { 'www-authenticate': 'Bearer' });

export const tooLarge = (maxBytes: number) => new HttpError(413, 'T2_TOO_LARGE', `package larger than the server's limit of ${maxBytes} bytes`);

/** Anything that is not already an HttpError is the server's fault: 500. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  return new HttpError(500, 'T2_INTERNAL', err instanceof Error ? err.message : String(err));
}

export function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/**
 * An error answer to a request whose body is still coming (a client that sent it without waiting for
 * `100 Continue`): the rest is read and discarded, so the client reads the answer and may reuse the
 * connection. Closing at once would reset a connection with unread bytes, and that reset can reach the
 * client before the answer does. A body still coming after LINGER_MS is cut off rather than drained.
 */
export function linger(req: http.IncomingMessage): void {
  req.resume();
  const timer = setTimeout(() => {
    if (!req.complete) req.socket.destroy();
  }, LINGER_MS);
  timer.unref();
  req.once('end', () => clearTimeout(timer));
}
