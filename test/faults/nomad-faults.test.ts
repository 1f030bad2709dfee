import { afterAll, beforeAll } from 'vitest';
import { startNomadAgent, type NomadAgent } from '../env/nomad-agent.js';
import { faultSuite } from './harness.js';

// The fault suite on a real Nomad agent (README.md): the job master runs in its allocation (`submit
// --detach`), under its supervisor there, its journal in Nomad Variables; the workers are allocations of
// the same job.
let agent: NomadAgent;
beforeAll(async () => {
  agent = await startNomadAgent({ memoryMB: 4000 });
  process.env.NOMAD_ADDR = agent.addr;
}, 120_000);
afterAll(async () => {
  delete process.env.NOMAD_ADDR;
  await agent?.stop();
});

faultSuite(
  {
    name: 'nomad',
    spec: { cluster: 'nomad', resources: { cpu: 0.05, memory: '64Mi' } },
    async leftovers(jobId) {
      const res = await fetch(`${agent.addr}/v1/job/${encodeURIComponent(jobId)}`);
      const left = res.status === 404 ? [] : [`nomad job ${jobId}: HTTP ${res.status}`];
      // The job master's journal (Nomad Variables) and the worker token's variable go with the job.
      for (const prefix of [`nomad/jobs/${jobId}`, `twister2/jobs/${jobId}/`]) {
        const vars = (await (await fetch(`${agent.addr}/v1/vars?prefix=${encodeURIComponent(prefix)}`)).json()) as { Path: string }[] | null;
        for (const v of vars ?? []) left.push(`variable ${v.Path}`);
      }
      return left;
    },
    async describe(jobId) {
      type Alloc = { ID: string; Name: string; ClientStatus: string; TaskStates?: Record<string, { State: string; Events?: { Type: string; DisplayMessage?: string }[] }> };
      const allocs = (await (await fetch(`${agent.addr}/v1/job/${encodeURIComponent(jobId)}/allocations`)).json()) as Alloc[];
      const lines = [];
      for (const a of allocs) {
        lines.push(`${a.Name} ${a.ClientStatus}: ${Object.entries(a.TaskStates ?? {}).map(([task, t]) => `${task} ${t.State} [${(t.Events ?? []).map((e) => `${e.Type}${e.DisplayMessage ? ` (${e.DisplayMessage})` : ''}`).join('; ')}]`).join(' ')}`);
        // The job master's own words are in its allocation's log, not in the job directory.
        const task = Object.keys(a.TaskStates ?? {})[0];
        const log = await fetch(`${agent.addr}/v1/client/fs/logs/${a.ID}?task=${task}&type=stderr&origin=end&offset=3000&plain=true`);
        if (log.ok) lines.push((await log.text()).trimEnd().replace(/^/gm, '    '));
      }
      return lines.join('\n');
    },
  },
  10,
);
