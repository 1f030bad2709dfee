import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import type http from 'node:http';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { tooLarge } from './http-answers.js';

/**
 * Streams an upload's body into a new file `file` (which must not exist), counting and hashing it on
 * the way. More than `maxBytes` stops it with a 413; a client that goes away stops it too. On failure
 * `file` may be left partly written: removing it is the caller's job.
 */
export async function receiveBody(req: http.IncomingMessage, file: string, maxBytes: number): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  let over = false;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > maxBytes) {
        over = true;
        cb(new Error('too large'));
        return;
      }
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  // req is piped rather than put in the pipeline: a pipeline would destroy the request (and the
  // socket) on a 413, and the client would see a reset instead of the answer.
  const onAbort = () => {
    if (!req.complete) meter.destroy(new Error('the client went away during the upload'));
  };
  req.once('close', onAbort);
  req.once('error', onAbort);
  req.pipe(meter);
  try {
    await pipeline(meter, createWriteStream(file, { flags: 'wx', mode: 0o600 }));
  } catch (err) {
    req.unpipe(meter);
    if (over) throw tooLarge(maxBytes);
    throw err;
  } finally {
    req.off('close', onAbort);
    req.off('error', onAbort);
  }
  return { size, sha256: hash.digest('hex') };
}
