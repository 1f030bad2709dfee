import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ExitCode, UsageError } from '../../errors.js';
import { parseBytes } from '../../spec/units.js';
import { wholeNumberFlag } from '../flags.js';
import { PackageServer } from '../../uploader/http/package-server.js';

export const PACKAGE_SERVER_TOKEN_ENV = 'TWISTER2_PACKAGE_SERVER_TOKEN';
const MIN_TOKEN_LENGTH = 16;

/**
 * `twister2 package-server`: runs twister2's own package server in the foreground until SIGINT or
 * SIGTERM. The admin token comes from the environment, never from a flag (flags show in `ps`).
 */
export async function packageServerCommand(a: { dir: string; host: string; port: string; maxSize: string }): Promise<number> {
  const token = process.env[PACKAGE_SERVER_TOKEN_ENV];
  const hint = `Generate one with e.g. \`export ${PACKAGE_SERVER_TOKEN_ENV}=$(openssl rand -hex 32)\` and give clients the same value.`;
  if (!token) throw new UsageError(`the package server needs an admin token in ${PACKAGE_SERVER_TOKEN_ENV}`, { hint });
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new UsageError(`the token in ${PACKAGE_SERVER_TOKEN_ENV} is too short: use at least ${MIN_TOKEN_LENGTH} characters`, { hint });
  }
  const maxBytes = parseBytes(a.maxSize);
  if (maxBytes === undefined || maxBytes <= 0) throw new UsageError(`--max-size ${JSON.stringify(a.maxSize)} is not a size: use e.g. 512Mi, 2Gi or a number of bytes`);
  const port = wholeNumberFlag('--port', a.port, { min: 0, max: 65535, example: 'twister2 package-server --port 8080' });

  const dir = path.resolve(a.dir);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new UsageError(`cannot create the storage directory ${dir}: ${(err as Error).message}`);
  }

  const server = new PackageServer();
  let url: string;
  try {
    url = await server.start({ dir, host: a.host, port, token, maxBytes, log: (line) => process.stderr.write(`${line}\n`) });
  } catch (err) {
    await server.close();
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot listen on ${a.host}:${port}: ${(err as Error).message}`);
  }
  process.stdout.write(`twister2 package-server listening on ${url}, storing in ${dir}\n`);

  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await server.close();
  return ExitCode.succeeded;
}
