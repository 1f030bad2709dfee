import { afterEach, expect, it } from 'vitest';
import { JobMasterServer } from '../../../src/jobmaster/http-server.js';
import { JobMaster } from '../../../src/jobmaster/job-master.js';
import { workerTokenOf } from '../../../src/job/worker-environment.js';
import { parseSpec } from '../../../src/spec/validate.js';
import { JobMasterLink } from '../../../src/worker/job-master-link.js';
import { noopLauncher, registration } from '../../helpers/registration.js';

const SECRET = 'the-jobs-admin-secret-0123456789';
let close: (() => Promise<void>) | undefined;
afterEach(async () => close?.());

it("a worker's calls to its job master go over one channel connection, not a request each", async () => {
  const jm = new JobMaster({ jobId: 'link-1', spec: parseSpec({ name: 'link', workers: 1, worker: { command: 'true' } }), launcher: noopLauncher() });
  const seen: string[] = [];
  const server = new JobMasterServer(jm, SECRET, (r) => seen.push(r.caller));
  close = () => server.close();
  const url = await server.listen('127.0.0.1', 0);
  jm.start();
  const link = new JobMasterLink(url, workerTokenOf(SECRET), 0);
  const { session } = await link.register(registration(0), 5000);
  await link.client.publishPorts(0, session, { data: 5000 });
  expect((await link.client.workers({ waitForAll: true, timeoutMs: 1000 })).workers[0]?.ports).toEqual({ data: 5000 });
  await link.client.barrier('start', 0, session);
  await link.client.complete(0, session, true);
  expect((await jm.whenEnded()).state).toBe('SUCCEEDED');
  expect(seen).toEqual(['worker']); // the one upgrade
  link.client.close();
});
