import { z } from 'zod';
import { JobEventSchema, JobStatusSchema } from './messages.js';

/**
 * A job master's report to a dashboard (spec `dashboard.url`): POST <url>/api/report/<jobId> with
 * `Authorization: Bearer <the job's report token>`. Each carries the whole status and the events since
 * the last accepted report; the answer carries what the dashboard's users asked of the job meanwhile.
 */
export const REPORT_PATH = 'api/report/';
export const MAX_REPORT_EVENTS = 1000;
export const MAX_REPORT_BYTES = 4 * 1024 * 1024;

export const DashboardReportSchema = z.object({
  status: JobStatusSchema,
  /**
   * Names the reporting job master process; with it, each event's `seq` (counting up from 1) lets the
   * dashboard drop events it already has: a report whose answer was lost is sent again, with its events.
   */
  reporter: z.string().max(64).optional(),
  events: z.array(z.object({ at: z.string(), seq: z.number().int().optional(), event: JobEventSchema })).max(MAX_REPORT_EVENTS).default([]),
});
export type DashboardReport = z.input<typeof DashboardReportSchema>;

export const DashboardCommandSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('scale'), workers: z.number().int().min(1).max(100_000) }),
  z.object({ op: z.literal('kill'), reason: z.string().max(1000) }),
]);
export type DashboardCommand = z.infer<typeof DashboardCommandSchema>;

export const DashboardReplySchema = z.object({ commands: z.array(DashboardCommandSchema).default([]) });
