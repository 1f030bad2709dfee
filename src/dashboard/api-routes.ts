import path from 'node:path';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { Twister2Error } from '../errors.js';
import { files } from '../job/job-store.js';
import { DashboardCommandSchema, DashboardReportSchema, MAX_REPORT_BYTES, type DashboardCommand } from '../protocol/dashboard-report.js';
import { WorkersSchema } from '../spec/schema.js';
import type { DashboardAccess } from './access.js';
import type { HomeWatcher } from './home-watcher.js';
import type { JobBoard } from './job-board.js';
import { followFile, lastLines } from './log-tail.js';
import { refuse, requireAccess } from './security.js';

export interface ApiDeps {
  access: DashboardAccess;
  board: JobBoard;
  home: HomeWatcher;
  /** What the dashboard's users asked of jobs that report (their job masters take it with their next report). */
  commands: Map<string, DashboardCommand[]>;
}

const small = bodyLimit({ maxSize: 16 * 1024, onError: (c) => refuse(c, 413, 'T2_TOO_LARGE', 'the request body is over 16 KiB') });

/** The JSON API (docs/dashboard.md): what the page shows, for scripts too. */
export function apiRoutes(deps: ApiDeps): Hono {
  const { access, board, home, commands } = deps;
  const api = new Hono();

  // Job masters report with their job's token, not the access token: mounted before requireAccess.
  api.post('/report/:jobId', bodyLimit({ maxSize: MAX_REPORT_BYTES, onError: (c) => refuse(c, 413, 'T2_TOO_LARGE', 'a report is at most 4 MiB') }), async (c) => {
    const jobId = c.req.param('jobId');
    const bearer = /^Bearer (.+)$/.exec(c.req.header('authorization') ?? '')?.[1];
    if (bearer === undefined) return refuse(c, 401, 'T2_UNAUTHENTICATED', 'a report needs its job\'s report token (Authorization: Bearer)');
    if (!access.checkReportToken(jobId, bearer)) return refuse(c, 403, 'T2_FORBIDDEN', `this token does not report for job ${jobId}`);
    const parsed = DashboardReportSchema.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) return refuse(c, 400, 'T2_PROTOCOL', `not a report: ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`);
    const { status, events, reporter } = parsed.data;
    if (status.jobId !== jobId) return refuse(c, 403, 'T2_FORBIDDEN', `this token reports for job ${jobId}, not ${status.jobId}`);
    // A job of this machine is asked directly; its job master's reports only fetch what was asked of it.
    if (!home.isHome(jobId)) {
      board.update({ via: 'report', status, controls: { scale: true, kill: true }, logs: false });
      board.addEvents(jobId, events, reporter);
    }
    const asked = commands.get(jobId) ?? [];
    commands.delete(jobId);
    return c.json({ commands: asked });
  });

  api.use('*', requireAccess(access));

  api.post('/report-tokens', small, async (c) => {
    const body = z.object({ jobId: z.string().min(1).max(253) }).safeParse(await c.req.json().catch(() => undefined));
    if (!body.success) return refuse(c, 400, 'T2_PROTOCOL', 'expected {"jobId": "<the job\'s ID>"}');
    return c.json({ token: access.reportToken(body.data.jobId) });
  });

  api.get('/jobs', (c) => c.json({ jobs: board.summaries() }));

  api.get('/jobs/:jobId', (c) => {
    const d = board.detail(c.req.param('jobId'));
    return d ? c.json(d) : notFound(c);
  });

  api.get('/events', (c) =>
    streamSSE(c, async (stream) => {
      const send = (jobId: string) => {
        const s = board.summary(jobId);
        if (s) void stream.writeSSE({ event: 'job', data: JSON.stringify(s) });
      };
      const removed = (jobId: string) => void stream.writeSSE({ event: 'removed', data: JSON.stringify({ jobId }) });
      for (const s of board.summaries()) await stream.writeSSE({ event: 'job', data: JSON.stringify(s) });
      board.on('changed', send);
      board.on('removed', removed);
      await untilClosed(stream, () => (board.off('changed', send), board.off('removed', removed)));
    }),
  );

  api.get('/jobs/:jobId/events', (c) => {
    const jobId = c.req.param('jobId');
    if (!board.has(jobId)) return notFound(c);
    return streamSSE(c, async (stream) => {
      // At most one detail every 200 ms: a busy job changes far more often than a person can look.
      let timer: NodeJS.Timeout | undefined;
      const send = () => {
        const d = board.detail(jobId);
        if (d) void stream.writeSSE({ event: 'detail', data: JSON.stringify(d) });
      };
      const changed = (id: string) => {
        if (id === jobId && !timer) timer = setTimeout(() => ((timer = undefined), send()), 200);
      };
      send();
      board.on('changed', changed);
      await untilClosed(stream, () => (board.off('changed', changed), clearTimeout(timer)));
    });
  });

  api.get('/jobs/:jobId/logs', (c) => {
    const jobId = c.req.param('jobId');
    const handle = home.handle(jobId);
    const dir = home.jobDir(jobId);
    if (!dir) return notFound(c, 'the dashboard has no logs of this job (its job master reports from the cluster)');
    const worker = c.req.query('worker') ?? '0';
    if (!/^(\d{1,6}|driver)$/.test(worker)) return refuse(c, 400, 'T2_PROTOCOL', `worker=${worker}: expected a worker ID or "driver"`);
    const tail = Math.min(Number(c.req.query('tail') ?? 200) || 200, 2000);
    const file = path.join(dir, files.logs, worker === 'driver' ? 'driver.log' : `worker-${worker}.log`);
    return streamSSE(c, async (stream) => {
      const ctl = new AbortController();
      // Worker pods' logs reach the job directory while a client follows them.
      if (handle?.record.jobMaster?.kubernetes) void drain(handle.logs({ follow: true, signal: ctl.signal }));
      const { lines, end } = await lastLines(file, tail);
      for (const line of lines) await stream.writeSSE({ event: 'line', data: JSON.stringify({ workerId: worker, line }) });
      const follower = followFile(file, end, (line) => void stream.writeSSE({ event: 'line', data: JSON.stringify({ workerId: worker, line }) }));
      const ended = setInterval(() => {
        if (board.isEnded(jobId)) void follower.stop().then(() => stream.writeSSE({ event: 'end', data: '{}' })).then(() => stream.close());
      }, 1000);
      await untilClosed(stream, () => (clearInterval(ended), ctl.abort(), void follower.stop()));
    });
  });

  api.post('/jobs/:jobId/scale', small, async (c) => {
    const workers = WorkersSchema.safeParse((await c.req.json().catch(() => ({})) as { workers?: unknown }).workers);
    if (!workers.success) return refuse(c, 400, 'T2_OPTIONS_INVALID', `workers: ${workers.error.issues[0]!.message}; expected e.g. {"workers": 6}`);
    return control(c, deps, { op: 'scale', workers: workers.data });
  });

  api.post('/jobs/:jobId/kill', small, (c) => control(c, deps, { op: 'kill', reason: 'killed from the dashboard' }));
  return api;
}

/** Scale or kill: a job of this machine through its job master; a job that reports, with its next report. */
async function control(c: Context, deps: ApiDeps, command: DashboardCommand): Promise<Response> {
  const jobId = c.req.param('jobId')!;
  const detail = deps.board.detail(jobId);
  if (!detail) return notFound(c);
  if (deps.board.isEnded(jobId)) return refuse(c, 409, 'T2_JOB_STATE', `job ${jobId} already ended (${detail.state})`);
  DashboardCommandSchema.parse(command);
  const handle = deps.home.handle(jobId);
  if (!handle) {
    if (detail.via !== 'report') return refuse(c, 409, 'T2_JOB_STATE', `job ${jobId} has no job master to ask yet`);
    deps.commands.set(jobId, [...(deps.commands.get(jobId) ?? []), command]);
    return c.json({ queued: true }, 202);
  }
  if (!handle.client) return refuse(c, 409, 'T2_JOB_STATE', `job ${jobId} has no job master to ask`);
  try {
    const status = command.op === 'scale' ? await handle.scale(command.workers) : await handle.client.kill(command.reason);
    return c.json({ state: status.state, numWorkers: status.numWorkers });
  } catch (err) {
    if (!Twister2Error.is(err)) throw err;
    return refuse(c, err.userError ? 400 : err.code === 'T2_JOB_STATE' ? 409 : 502, err.code, err.message);
  }
}

function notFound(c: Context, message?: string): Response {
  return refuse(c, 404, 'T2_JOB_NOT_FOUND', message ?? `the dashboard knows no job ${c.req.param('jobId')}`);
}

/** Keeps an event stream open until the browser goes, with a comment now and then so proxies keep it too. */
async function untilClosed(stream: { onAbort(fn: () => void): void; writeSSE(m: { data: string; event?: string }): Promise<void>; sleep(ms: number): Promise<unknown>; aborted: boolean; closed: boolean }, cleanup: () => void): Promise<void> {
  let done = false;
  stream.onAbort(() => {
    done = true;
    cleanup();
  });
  while (!done && !stream.aborted && !stream.closed) await stream.sleep(1000);
  if (!done) cleanup();
}

async function drain(lines: AsyncIterable<unknown>): Promise<void> {
  try {
    for await (const _ of lines);
  } catch {
    // The log view says what it has.
  }
}
