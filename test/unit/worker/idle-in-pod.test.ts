import { describe, expect, it } from 'vitest';
import { JobMasterServer } from '../../../src/jobmaster/http-server.js';
import { JobMaster } from '../../../src/jobmaster/job-master.js';
import type { Launcher } from '../../../src/launchers/launcher.js';
import { JobMasterClient } from '../../../src/protocol/jobmaster-client.js';
import { parseSpec } from '../../../src/spec/validate.js';
import { idleUntilJobMasterGone } from '../../../src/worker/idle-in-pod.js';

const TOKEN = 'a-test-secret-of-enough-length';
const launcher: Launcher = { start: async () => {}, addWorkers: async () => {}, removeWorkers: async () => {}, release: async () => {} };

describe('a finished worker idling in its pod', () => {
  it('keeps idling while its job master answers, also after the job ended, and returns once the job master is gone', async () => {
    const spec = parseSpec({ name: 'idle', workers: 1, worker: { command: 'true' } });
    const jm = new JobMaster({ jobId: 'idle-1', spec, launcher });
    const server = new JobMasterServer(jm, TOKEN);
    const url = await server.listen('127.0.0.1', 0);
    let returned = false;
    const idling = idleUntilJobMasterGone(new JobMasterClient({ url, token: TOKEN }), 400).then(() => (returned = true));
    jm.kill('the test ended the job');
    // Several rounds of asking (one every 100 ms): the pod's deletion, not the job's end, stops an idle worker.
    await new Promise((r) => setTimeout(r, 1000));
    expect(returned).toBe(false);
    await server.close();
    await idling;
    expect(returned).toBe(true);
  });
});
