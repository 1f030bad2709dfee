import { Twister2Error } from '../../errors.js';
import { ENV } from '../../job/worker-environment.js';

/**
 * Where the job master is. Launchers usually say so (TWISTER2_JOB_MASTER_URL). A job master that runs as
 * one of the cluster's own allocations (Nomad) is found through the cluster's service discovery instead:
 * TWISTER2_JOB_MASTER_SERVICE names the service it registers, and the worker asks Nomad for it until it
 * appears (both start at the same time) or the registration timeout passes.
 */
export async function jobMasterUrl(env: NodeJS.ProcessEnv, timeoutMs: number, log: (line: string) => void): Promise<string> {
  const given = env[ENV.jobMasterUrl];
  if (given) return given;
  const service = env[ENV.jobMasterService];
  if (!service) throw new Twister2Error(`the worker runtime was started without ${ENV.jobMasterUrl} or ${ENV.jobMasterService}; it is meant to be started by a twister2 launcher`);
  const nomad = (env.NOMAD_ADDR ?? 'http://127.0.0.1:4646').replace(/\/+$/, '');
  const ns = env.NOMAD_NAMESPACE ? `?namespace=${encodeURIComponent(env.NOMAD_NAMESPACE)}` : '';
  const url = `${nomad}/v1/service/${encodeURIComponent(service)}${ns}`;
  const deadline = Date.now() + timeoutMs;
  let last = 'not registered yet';
  for (let round = 0; Date.now() < deadline; round++) {
    try {
      const res = await fetch(url, { headers: env.NOMAD_TOKEN ? { 'X-Nomad-Token': env.NOMAD_TOKEN } : {}, signal: AbortSignal.timeout(5000) });
      if (res.ok) {
        const regs = (await res.json()) as { Address: string; Port: number }[];
        const reg = regs[0];
        if (reg) return `http://${reg.Address.includes(':') ? `[${reg.Address}]` : reg.Address}:${reg.Port}`;
      } else {
        last = `HTTP ${res.status}`;
      }
    } catch (err) {
      last = (err as Error).message;
    }
    if (round === 10) log(`waiting for the job master's service "${service}" in Nomad (${last})`);
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Twister2Error(`the job master's service "${service}" did not appear in Nomad's service discovery at ${nomad} (${last})`);
}
