/**
 * Slurm job states (squeue %T / scontrol JobState) mapped, in one table, to what twister2 does with them:
 * queued (the job master shows QUEUED with Slurm's reason), allocated (workers are starting or running),
 * or ended (with whether Slurm counts it a success).
 */
export type SlurmPhase = 'queued' | 'allocated' | 'ended';

interface StateInfo {
  phase: SlurmPhase;
  /** For ended states: what it means, in words a user reads in the job's failure message. */
  meaning?: string;
}

export const SLURM_JOB_STATES: Readonly<Record<string, StateInfo>> = {
  PENDING: { phase: 'queued' },
  REQUEUED: { phase: 'queued' },
  REQUEUE_HOLD: { phase: 'queued' },
  REQUEUE_FED: { phase: 'queued' },
  RESV_DEL_HOLD: { phase: 'queued' },
  SUSPENDED: { phase: 'queued' },
  CONFIGURING: { phase: 'allocated' },
  RUNNING: { phase: 'allocated' },
  RESIZING: { phase: 'allocated' },
  SIGNALING: { phase: 'allocated' },
  STAGE_OUT: { phase: 'allocated' },
  COMPLETING: { phase: 'allocated' },
  STOPPED: { phase: 'allocated' },
  COMPLETED: { phase: 'ended', meaning: 'the batch script finished with exit code 0' },
  FAILED: { phase: 'ended', meaning: 'the batch script failed' },
  CANCELLED: { phase: 'ended', meaning: 'the job was cancelled (scancel or an administrator)' },
  TIMEOUT: { phase: 'ended', meaning: 'the job reached its time limit (slurm.time)' },
  NODE_FAIL: { phase: 'ended', meaning: 'a node of the allocation failed' },
  OUT_OF_MEMORY: { phase: 'ended', meaning: 'a worker exceeded its memory (resources.memory or slurm.memoryPerNode)' },
  PREEMPTED: { phase: 'ended', meaning: 'the job was preempted by a higher-priority job' },
  BOOT_FAIL: { phase: 'ended', meaning: 'a node failed to boot' },
  DEADLINE: { phase: 'ended', meaning: 'the job missed its deadline' },
  SPECIAL_EXIT: { phase: 'ended', meaning: 'the job ended in Slurm\'s special exit state' },
  REVOKED: { phase: 'ended', meaning: 'a sibling cluster started the job (federation)' },
};

/** squeue and scontrol may append flags ("CANCELLED by 0"); unknown states count as allocated, never as ended. */
export function slurmPhase(state: string): StateInfo & { state: string } {
  const base = state.trim().split(/\s+/)[0]!.toUpperCase();
  return { state: base, ...(SLURM_JOB_STATES[base] ?? { phase: 'allocated' as const }) };
}

/**
 * Pending reasons that Slurm keeps a job waiting on forever (until an administrator changes the
 * cluster): reported as a failure at once instead of leaving the user watching a queue.
 */
export const UNSATISFIABLE_REASONS: ReadonlySet<string> = new Set([
  'BadConstraints',
  'PartitionConfig',
  'PartitionNodeLimit',
  'PartitionTimeLimit',
  'PartitionDown',
  'PartitionInactive',
  'InvalidAccount',
  'InvalidQOS',
  'AccountNotAllowed',
  'QOSNotAllowed',
  'DependencyNeverSatisfied',
  'JobHeldAdmin',
]);

/** Reasons in words, where Slurm's own token is cryptic. */
const REASON_WORDS: Readonly<Record<string, string>> = {
  None: 'waiting to be scheduled',
  Priority: 'other jobs have priority',
  Resources: 'waiting for resources to become free',
  ReqNodeNotAvail: 'a requested node is not available',
  BeginTime: 'its begin time has not come',
  Dependency: 'waiting for a dependency',
  JobHeldUser: 'held by the user (scontrol release)',
  JobHeldAdmin: 'held by an administrator',
  PartitionNodeLimit: 'it asks for more nodes than the partition allows',
  PartitionTimeLimit: 'its time limit is above the partition\'s',
  PartitionConfig: 'the partition cannot run it as asked (e.g. more CPUs than its nodes have)',
  BadConstraints: 'no node satisfies its constraints',
};

export function describeReason(reason: string): string {
  const words = REASON_WORDS[reason];
  return words ? `${reason}: ${words}` : reason;
}
