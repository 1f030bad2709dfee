/** The public API of twister2. Anything not exported here is internal and may change. */
export { submit, type SubmitOptions } from './client/submit.js';
export { attachJob, JobHandle } from './client/job-handle.js';
export type { LogLine } from './client/log-follower.js';
export { JobSpecSchema, CLUSTER_KINDS, type ClusterKind, type JobSpec, type JobSpecInput } from './spec/schema.js';
export { parseSpec } from './spec/validate.js';
export type { WorkerContext, WorkerContextEvents, WorkerFunction, WorkerLogger } from './worker/context.js';
export type { DriverContext, DriverContextEvents, DriverFunction } from './jobmaster/driver/driver-context.js';
export {
  PROTOCOL_VERSION,
  type DriverState,
  type DriverStatus,
  type JobEvent,
  type JobState,
  type JobStatus,
  type WorkerInfo,
  type WorkerState,
  type WorkerStatus,
} from './protocol/messages.js';
export { JobMasterClient } from './protocol/jobmaster-client.js';
export type { Launcher, LaunchContext, LauncherListener, WorkerExit } from './launchers/launcher.js';
export type { PackageRef, PackageToUpload, Uploader, UploadOptions } from './uploader/uploader.js';
export { PackageServer, type PackageServerOptions } from './uploader/http/package-server.js';
export * from './errors.js';

import type { WorkerFunction } from './worker/context.js';
import type { DriverFunction } from './jobmaster/driver/driver-context.js';

/** Types a worker module's default export: `export default defineWorker(async (ctx) => { ... })`. */
export function defineWorker(fn: WorkerFunction): WorkerFunction {
  return fn;
}

/** Types a driver module's default export: `export default defineDriver(async (ctx) => result)`. */
export function defineDriver(fn: DriverFunction): DriverFunction {
  return fn;
}
