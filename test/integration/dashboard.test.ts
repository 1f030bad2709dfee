import { spawnSync } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobIds, jobProcesses, makeJob, runCli, startCli, tempHome, waitFor } from '../helpers/cli.js';
import { startDashboard, type RunningDashboard } from '../helpers/dashboard.js';

interface Summary {
  jobId: string;
  state: string;
  via: string;
  numWorkers: number;
  running: number;
  workerStates: Array<{ workerId: number; state: string }>;
}
interface Detail extends Summary {
  timeline: Array<{ event: { type: string; workerId?: number; state?: string } }>;
  spec: Array<[string, string]>;
}

/** Workers that print a line and run until `go` exists (then finish), or until they are stopped. */
function waitingJob(name: string, workers: number) {
  const go = path.join(mkdtempSync(path.join(os.tmpdir(), 't2-go-')), 'go');
  const worker = `import { existsSync } from 'node:fs';
export default async (ctx) => {
  console.log('worker ' + ctx.workerId + ' up');
  while (!existsSync(${JSON.stringify(go)})) await new Promise((r) => setTimeout(r, 100));
};\n`;
  return { dir: makeJob({ name, workers, worker: { module: 'w.mjs' } }, { 'w.mjs': worker }), go: () => writeFileSync(go, '') };
}

async function jobOn(d: RunningDashboard, jobId: string, ok: (s: Summary) => boolean, what: string): Promise<Summary> {
  return waitFor(`${what} (job ${jobId} on the dashboard)`, async () => {
    const { body } = await d.api<{ jobs: Summary[] }>('/api/jobs');
    const s = body.jobs.find((j) => j.jobId === jobId);
    return s && ok(s) ? s : undefined;
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe('twister2 dashboard: API, access and reports', () => {
  it('every page, asset and API call needs the token; the login link sets an HttpOnly SameSite=Strict session; a rotated token ends it', async () => {
    const home = tempHome();
    const d = await startDashboard(home);
    try {
      expect(statSync(path.join(home, 'dashboard', 'token')).mode & 0o777).toBe(0o600);
      for (const p of ['/', '/jobs/x', '/ui/app.js', '/api/jobs', '/api/jobs/x', '/api/events']) {
        const res = await fetch(d.url + p);
        expect(res.status, p).toBe(401);
        expect(((await res.json()) as { error: { code: string } }).error.code).toBe('T2_UNAUTHENTICATED');
      }
      expect((await fetch(`${d.url}/api/jobs`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
      expect((await fetch(`${d.url}/?token=nope`, { redirect: 'manual' })).status).toBe(401);

      const login = await fetch(d.loginUrl, { redirect: 'manual' });
      expect(login.status).toBe(303);
      expect(login.headers.get('location')).toBe('/');
      const setCookie = login.headers.get('set-cookie')!;
      expect(setCookie).toMatch(/HttpOnly/);
      expect(setCookie).toMatch(/SameSite=Strict/);
      expect(setCookie).not.toContain(d.token);
      const cookie = setCookie.split(';')[0]!;
      const page = await fetch(`${d.url}/`, { headers: { cookie } });
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
      expect(await page.text()).toContain('/ui/app.js');
      expect((await fetch(`${d.url}/ui/app.js`, { headers: { cookie } })).status).toBe(200);
      expect((await fetch(`${d.url}/api/jobs`, { headers: { cookie } })).status).toBe(200);

      const rotated = await runCli(['dashboard', '--rotate-token'], home);
      expect(rotated.code, rotated.stderr).toBe(0);
      expect(rotated.stdout).not.toContain(d.token);
      expect((await fetch(`${d.url}/api/jobs`, { headers: { cookie } })).status).toBe(401);
      expect((await fetch(`${d.url}/api/jobs`, { headers: { authorization: `Bearer ${d.token}` } })).status).toBe(401);
      const fresh = (await import('node:fs')).readFileSync(path.join(home, 'dashboard', 'token'), 'utf8').trim();
      expect((await fetch(`${d.url}/api/jobs`, { headers: { authorization: `Bearer ${fresh}` } })).status).toBe(200);
    } finally {
      await d.stop();
    }
  });

  it('a local job of this TWISTER2_HOME shows without configuration; the API scales it 4 -> 6 and kills it; cross-site POSTs are refused and change nothing', async () => {
    const home = tempHome();
    const d = await startDashboard(home);
    const job = waitingJob('dash-local', 4);
    const cli = startCli(['submit', job.dir], home);
    try {
      const jobId = await waitFor('the job', () => jobIds(home)[0]);
      await jobOn(d, jobId, (s) => s.state === 'RUNNING' && s.running === 4 && s.via === 'home', 'RUNNING with 4 workers');
      const detail = (await d.api<Detail>(`/api/jobs/${jobId}`)).body;
      expect(detail.spec).toContainEqual(['workers', '4']);

      // A cross-site page can send the cookie with a form, but not the header; nor come from another origin.
      const cookie = (await fetch(d.loginUrl, { redirect: 'manual' })).headers.get('set-cookie')!.split(';')[0]!;
      const form = await fetch(`${d.url}/api/jobs/${jobId}/kill`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: 'x=1' });
      expect(form.status).toBe(403);
      const foreign = await fetch(`${d.url}/api/jobs/${jobId}/kill`, { method: 'POST', headers: { cookie, 'x-twister2-dashboard': '1', origin: 'http://evil.example', 'content-type': 'application/json' }, body: '{}' });
      expect(foreign.status).toBe(403);
      expect(((await foreign.json()) as { error: { message: string } }).error.message).toContain('cross-site');

      const bad = await d.api<{ error: { message: string } }>(`/api/jobs/${jobId}/scale`, { method: 'POST', body: JSON.stringify({ workers: 0 }) });
      expect(bad.status).toBe(400);
      expect(bad.body.error.message).toMatch(/workers/);
      const scaled = await d.api<{ numWorkers: number }>(`/api/jobs/${jobId}/scale`, { method: 'POST', body: JSON.stringify({ workers: 6 }) });
      expect(scaled.status).toBe(200);
      expect(scaled.body.numWorkers).toBe(6);
      await jobOn(d, jobId, (s) => s.running === 6, 'workers 4 and 5 RUNNING');

      const killed = await d.api<{ state: string }>(`/api/jobs/${jobId}/kill`, { method: 'POST', body: '{}' });
      expect(killed.status).toBe(200);
      expect(await cli.closed).toBe(3);
      await jobOn(d, jobId, (s) => s.state === 'KILLED', 'KILLED');
      const timeline = (await d.api<Detail>(`/api/jobs/${jobId}`)).body.timeline.map((t) => t.event);
      expect(timeline).toContainEqual(expect.objectContaining({ type: 'scaled', from: 4, to: 6 }));
      expect(jobProcesses(jobId)).toEqual([]);
      const again = await d.api(`/api/jobs/${jobId}/kill`, { method: 'POST', body: '{}' });
      expect(again.status).toBe(409);
    } finally {
      cli.kill('SIGKILL');
      await d.stop();
    }
  });

  it('a job master of another machine reports through --dashboard with a token for its job only; a kill pressed on the dashboard reaches it', async () => {
    const dashHome = tempHome();
    const clientHome = tempHome();
    const d = await startDashboard(dashHome);
    const job = waitingJob('dash-report', 2);
    const cli = startCli(['submit', '--dashboard', d.url, job.dir], clientHome, { TWISTER2_DASHBOARD_TOKEN: d.token });
    try {
      const jobId = await waitFor('the job', () => jobIds(clientHome)[0]);
      await jobOn(d, jobId, (s) => s.state === 'RUNNING' && s.running === 2 && s.via === 'report', 'RUNNING, reported');
      const detail = (await d.api<Detail & { logs: boolean }>(`/api/jobs/${jobId}`)).body;
      expect(detail.timeline.map((t) => t.event)).toContainEqual(expect.objectContaining({ type: 'worker-state', workerId: 1, state: 'RUNNING' }));
      expect(detail.logs).toBe(false);
      // The report token is in one 0600 file of the job directory (like the job's own secret), and nowhere in what the dashboard shows.
      const reportToken = (await d.api<{ token: string }>('/api/report-tokens', { method: 'POST', body: JSON.stringify({ jobId }) })).body.token;
      const jobDir = path.join(clientHome, 'jobs', jobId);
      expect(spawnSync('grep', ['-rl', reportToken, jobDir], { encoding: 'utf8' }).stdout).toBe(`${path.join(jobDir, 'dashboard-token')}\n`);
      expect(statSync(path.join(jobDir, 'dashboard-token')).mode & 0o777).toBe(0o600);
      expect(JSON.stringify((await d.api(`/api/jobs/${jobId}`)).body)).not.toContain(reportToken);

      const status = { jobId, name: 'x', cluster: 'local', state: 'FAILED', numWorkers: 1, registered: 0, workers: [], startedAt: new Date().toISOString() };
      const post = (id: string, token: string | undefined, body: unknown) =>
        fetch(`${d.url}/api/report/${id}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
      const otherToken = (await d.api<{ token: string }>('/api/report-tokens', { method: 'POST', body: JSON.stringify({ jobId: 'other-job' }) })).body.token;
      expect((await post(jobId, undefined, { status })).status).toBe(401);
      expect((await post(jobId, otherToken, { status })).status).toBe(403);
      expect((await post('other-job', reportToken, { status: { ...status, jobId: 'other-job' } })).status).toBe(403);
      expect((await post(jobId, reportToken, { status: { ...status, jobId: 'other-job' } })).status).toBe(403);
      expect((await post(jobId, reportToken, { status: { nope: 1 } })).status).toBe(400);
      expect((await d.api<{ jobs: Summary[] }>('/api/jobs')).body.jobs.map((j) => j.jobId)).toEqual([jobId]);

      const kill = await d.api(`/api/jobs/${jobId}/kill`, { method: 'POST', body: '{}' });
      expect(kill.status).toBe(202);
      expect(await cli.closed).toBe(3);
      expect(cli.output().stderr).toContain('killed from the dashboard');
      await jobOn(d, jobId, (s) => s.state === 'KILLED', 'KILLED, reported');
      expect(jobProcesses(jobId)).toEqual([]);
    } finally {
      cli.kill('SIGKILL');
      await d.stop();
    }
  });

  it('a dashboard that is down never fails a job: down at submit (a warning), stopped mid-job; once back it shows how the jobs ended', async () => {
    const home = tempHome();
    const clientHome = tempHome();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // Down at submit: the job runs unreported.
    const first = waitingJob('dash-down', 2);
    first.go();
    const unreported = await runCli(['submit', '--dashboard', url, first.dir], home, { TWISTER2_DASHBOARD_TOKEN: 'any' });
    expect(unreported.code, unreported.stderr).toBe(0);
    expect(unreported.stderr).toMatch(/twister2: warning: job dash-down-\S+ will not report to the dashboard at http:\/\/127\.0\.0\.1:\d+: it cannot be reached/);

    let d = await startDashboard(home, { port });
    const local = waitingJob('dash-home', 2);
    const reported = waitingJob('dash-remote', 2);
    const localCli = startCli(['submit', local.dir], home);
    const remoteCli = startCli(['submit', '--dashboard', url, reported.dir], clientHome, { TWISTER2_DASHBOARD_TOKEN: d.token });
    try {
      const localId = await waitFor('the local job', () => jobIds(home).find((id) => id.startsWith('dash-home')));
      const remoteId = await waitFor('the reporting job', () => jobIds(clientHome)[0]);
      await jobOn(d, localId, (s) => s.state === 'RUNNING', 'the local job RUNNING');
      await jobOn(d, remoteId, (s) => s.state === 'RUNNING', 'the reporting job RUNNING');
      await d.stop();
      // The reporting job master finds it gone (it reports at least every second) and goes on.
      await waitFor('the reporting job master to find the dashboard gone', () => /did not take a report/.test(remoteCli.output().stderr), 20_000);
      // The local job ends while the dashboard is down; the reporting one after it is back.
      local.go();
      expect(await localCli.closed).toBe(0);
      d = await startDashboard(home, { port });
      await jobOn(d, localId, (s) => s.state === 'SUCCEEDED', 'the local job SUCCEEDED, found again');
      reported.go();
      expect(await remoteCli.closed).toBe(0);
      await jobOn(d, remoteId, (s) => s.state === 'SUCCEEDED' && s.via === 'report', 'the reporting job SUCCEEDED');
      expect(remoteCli.output().stderr).toMatch(/the dashboard at http:\/\/127\.0\.0\.1:\d+ takes reports again/);
      // The ended jobs are the dashboard's history: a restart shows them, without their job masters.
      await d.stop();
      d = await startDashboard(home, { port });
      const ids = (await d.api<{ jobs: Summary[] }>('/api/jobs')).body.jobs.map((j) => `${j.jobId} ${j.state}`);
      expect(ids).toEqual(expect.arrayContaining([`${localId} SUCCEEDED`, `${remoteId} SUCCEEDED`]));
      expect(jobProcesses(localId).concat(jobProcesses(remoteId))).toEqual([]);
    } finally {
      localCli.kill('SIGKILL');
      remoteCli.kill('SIGKILL');
      await d.stop();
    }
  });

  it('a bad dashboard address in the spec or the environment is a spec error naming the field', async () => {
    const home = tempHome();
    const job = waitingJob('dash-bad', 1);
    const flag = await runCli(['submit', '--dashboard', 'ftp://x', job.dir], home);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('dashboard.url: expected an http:// or https:// address');
    const env = await runCli(['submit', job.dir], home, { TWISTER2_DASHBOARD_URL: 'not a url' });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('from TWISTER2_DASHBOARD_URL="not a url"');
    expect(jobIds(home)).toEqual([]);
  });
});
