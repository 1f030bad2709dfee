import type { DriverStatus, JobEvent, JobState, WorkerState } from '../protocol/messages.js';

/**
 * What the dashboard shows of a job: the JSON its API answers and its page reads. One shape whatever way
 * the dashboard learns of the job (`home`: a job of this machine's TWISTER2_HOME, asked directly;
 * `report`: a job master elsewhere that reports to the dashboard, spec `dashboard.url`).
 */
export interface JobSummary {
  jobId: string;
  name: string;
  cluster: string;
  state: JobState | 'LOST' | 'UNREACHABLE';
  numWorkers: number;
  /** Workers in state RUNNING now. */
  running: number;
  workerStates: Array<{ workerId: number; state: WorkerState }>;
  startedAt: string;
  endedAt?: string;
  message?: string;
  via: 'home' | 'report';
  /** When the dashboard last heard of the job (ISO time). */
  updatedAt: string;
}

export interface WorkerRow {
  workerId: number;
  state: WorkerState;
  host?: string;
  ip?: string;
  ports?: Record<string, number>;
  restarts: number;
  /** The job master's last heartbeat from it (ISO time), while it runs. */
  lastHeartbeatAt?: string;
  /** `ok`, `late` (no heartbeat for over half the timeout), `failed: <why>`, or '' before it runs. */
  health: string;
  message?: string;
}

/** A barrier some workers wait at: who arrived, who it still waits for. */
export interface BarrierView {
  name: string;
  generation: number;
  arrived: number[];
  missing: number[];
}

export interface TimelineEntry {
  at: string;
  event: JobEvent;
}

/** Workers running at a moment, for the chart. */
export interface Sample {
  at: string;
  running: number;
  total: number;
}

export interface JobDetail extends JobSummary {
  /** The spec as `[label, value]` rows to display (no secrets). */
  spec: Array<[string, string]>;
  workers: WorkerRow[];
  barriers: BarrierView[];
  timeline: TimelineEntry[];
  samples: Sample[];
  driver?: DriverStatus;
  /** Whether scale and kill can be asked now (a running job whose job master the dashboard can reach or that reports). */
  controls: { scale: boolean; kill: boolean };
  /** Whether `/api/jobs/<id>/logs` has lines for this job (not for a job that only reports). */
  logs: boolean;
}
