import path from 'node:path';
import { ExitCode, UsageError } from '../../errors.js';
import { dashboardHome } from '../../job/job-store.js';
import { rotateToken } from '../../dashboard/access.js';
import { Dashboard } from '../../dashboard/dashboard.js';
import { wholeNumberFlag } from '../flags.js';

/**
 * `twister2 dashboard`: the web dashboard in the foreground until SIGINT or SIGTERM. It prints its login
 * link (with the access token) once, on stdout, for the person who started it.
 */
export async function dashboardCommand(a: { host: string; port: string; dataDir?: string | undefined; rotateToken: boolean }): Promise<number> {
  const dataDir = path.resolve(a.dataDir ?? dashboardHome());
  if (a.rotateToken) {
    rotateToken(dataDir);
    process.stdout.write(`twister2 dashboard: a new access token is in ${path.join(dataDir, 'token')}; sessions made with the old one are over\n`);
    return ExitCode.succeeded;
  }
  const port = wholeNumberFlag('--port', a.port, { min: 0, max: 65535, example: 'twister2 dashboard --port 8642' });
  const dashboard = new Dashboard({ host: a.host, port, dataDir });
  let url: string;
  try {
    url = await dashboard.start();
  } catch (err) {
    await dashboard.stop();
    throw new UsageError(`cannot listen on ${a.host}:${port}: ${(err as Error).message}`);
  }
  process.stdout.write(`twister2 dashboard listening on ${url} (data in ${dataDir})\n`);
  process.stdout.write(`open ${url}/?token=${dashboard.access.accessToken()}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await dashboard.stop();
  return ExitCode.succeeded;
}
