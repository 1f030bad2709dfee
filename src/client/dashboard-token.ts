import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { SpecError } from '../errors.js';
import { dashboardHome } from '../job/job-store.js';
import { DashboardSpecSchema, type JobSpec } from '../spec/schema.js';

/** The dashboard to report to when the spec names none (the spec, then `--dashboard`, override it). */
export const DASHBOARD_URL_ENV = 'TWISTER2_DASHBOARD_URL';
/** The dashboard's access token, for a dashboard whose token file is not this machine's $TWISTER2_HOME/dashboard/token. */
export const DASHBOARD_TOKEN_ENV = 'TWISTER2_DASHBOARD_TOKEN';
/** Asking the dashboard for the job's token never holds a submission up for longer. */
const ISSUE_TIMEOUT_MS = 2000;

/** The spec with `dashboard` from TWISTER2_DASHBOARD_URL when it names none. */
export function withDashboardFromEnv(spec: JobSpec, env: NodeJS.ProcessEnv = process.env): JobSpec {
  const url = env[DASHBOARD_URL_ENV];
  if (spec.dashboard || !url) return spec;
  const parsed = DashboardSpecSchema.safeParse({ url });
  if (!parsed.success) throw new SpecError([{ path: 'dashboard.url', message: `${parsed.error.issues[0]!.message} (from ${DASHBOARD_URL_ENV}="${url}")` }]);
  return { ...spec, dashboard: parsed.data };
}

/**
 * Asks the dashboard for the token with which the job master reports this job (and only it). A
 * dashboard that cannot be asked does not stop the job: it runs unreported, and a warning says why.
 */
export async function issueReportToken(url: string, jobId: string, onWarning: (message: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const access = env[DASHBOARD_TOKEN_ENV] ?? (await readFile(path.join(dashboardHome(), 'token'), 'utf8').then((t) => t.trim(), () => undefined));
  const warn = (why: string) => onWarning(`job ${jobId} will not report to the dashboard at ${url}: ${why}`);
  if (!access) {
    warn(`no access token (set ${DASHBOARD_TOKEN_ENV}, or run the dashboard with this machine's TWISTER2_HOME)`);
    return undefined;
  }
  try {
    const res = await fetch(new URL('api/report-tokens', url.endsWith('/') ? url : `${url}/`), {
      method: 'POST',
      headers: { authorization: `Bearer ${access}`, 'content-type': 'application/json', 'x-twister2-dashboard': '1' },
      body: JSON.stringify({ jobId }),
      signal: AbortSignal.timeout(ISSUE_TIMEOUT_MS),
    });
    if (!res.ok) {
      warn(`it answered ${res.status}${res.status === 401 ? ` (wrong access token: check ${DASHBOARD_TOKEN_ENV})` : ''}`);
      return undefined;
    }
    return ((await res.json()) as { token: string }).token;
  } catch (err) {
    warn(`it cannot be reached (${(err as Error).message})`);
    return undefined;
  }
}
