import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform } from 'node:stream';

/**
 * An HTTP proxy in front of a real server that spoils the body of the first `corruptGets` GET responses:
 * `flip` changes one byte (the package "on the server" is corrupt for those downloads), `truncate` cuts the
 * connection halfway through the body (a download broken off). Deterministic either way.
 */
export async function startCorruptingProxy(
  target: string,
  corruptGets: number,
  mode: 'flip' | 'truncate' = 'flip',
): Promise<{ url: string; gets: () => number; ranges: () => (string | undefined)[]; close: () => Promise<void> }> {
  const upstream = new URL(target);
  let gets = 0;
  const ranges: (string | undefined)[] = [];
  const server = http.createServer((req, res) => {
    if (req.method === 'GET') ranges.push(req.headers.range);
    const corrupt = req.method === 'GET' && gets++ < corruptGets;
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (!corrupt || (up.statusCode ?? 0) >= 300) return void up.pipe(res);
        if (mode === 'truncate') {
          // Half the body, then the connection is cut, as a network that drops it would.
          const half = Math.floor(Number(up.headers['content-length'] ?? 0) / 2);
          let sent = 0;
          up.on('data', (chunk: Buffer) => {
            if (sent >= half) return;
            const part = chunk.subarray(0, half - sent);
            sent += part.length;
            if (sent < half) return void res.write(part);
            up.destroy();
            res.write(part, () => res.destroy());
          });
          return;
        }
        let flipped = false;
        up.pipe(
          new Transform({
            transform(chunk: Buffer, _enc, cb) {
              if (!flipped && chunk.length > 0) {
                chunk[chunk.length >> 1] = chunk[chunk.length >> 1]! ^ 0xff;
                flipped = true;
              }
              cb(null, chunk);
            },
          }),
        ).pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    gets: () => gets,
    ranges: () => [...ranges],
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
