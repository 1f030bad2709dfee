import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Transform } from 'node:stream';

/**
 * An HTTP proxy in front of a real server that flips one byte in the body of the first `corruptGets`
 * GET responses: the package "on the server" is corrupt for those downloads, deterministically.
 */
export async function startCorruptingProxy(target: string, corruptGets: number): Promise<{ url: string; gets: () => number; close: () => Promise<void> }> {
  const upstream = new URL(target);
  let gets = 0;
  const server = http.createServer((req, res) => {
    const corrupt = req.method === 'GET' && gets++ < corruptGets;
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (!corrupt || (up.statusCode ?? 0) >= 300) return void up.pipe(res);
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
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
