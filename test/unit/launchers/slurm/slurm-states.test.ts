import { describe, expect, it } from 'vitest';
import { describeReason, slurmPhase } from '../../../../src/launchers/slurm/job-states.js';
import { expandTaskList, parseTaskExit } from '../../../../src/launchers/slurm/task-exits.js';

describe('Slurm job states', () => {
  it.each([
    ['PENDING', 'queued'],
    ['CONFIGURING', 'allocated'],
    ['RUNNING', 'allocated'],
    ['COMPLETING', 'allocated'],
    ['COMPLETED', 'ended'],
    ['FAILED', 'ended'],
    ['CANCELLED by 0', 'ended'],
    ['TIMEOUT', 'ended'],
    ['NODE_FAIL', 'ended'],
    ['OUT_OF_MEMORY', 'ended'],
    ['PREEMPTED', 'ended'],
    ['SOMETHING_NEW', 'allocated'],
  ])('%s is %s', (state, phase) => {
    expect(slurmPhase(state).phase).toBe(phase);
  });

  it('explains ended states and pending reasons', () => {
    expect(slurmPhase('TIMEOUT').meaning).toMatch(/time limit \(slurm.time\)/);
    expect(slurmPhase('CANCELLED by 0').state).toBe('CANCELLED');
    expect(describeReason('Resources')).toBe('Resources: waiting for resources to become free');
    expect(describeReason('AssocGrpCpuLimit')).toBe('AssocGrpCpuLimit');
  });
});

describe("srun's task-exit lines", () => {
  it('reads exit codes, signals and task ranges', () => {
    expect(parseTaskExit('srun: error: node1: task 2: Killed')).toEqual({ node: 'node1', exits: [{ workerId: 2, code: null, signal: 'SIGKILL' }] });
    expect(parseTaskExit('srun: error: n-2: tasks 0-1,3: Exited with exit code 7')?.exits).toEqual([
      { workerId: 0, code: 7, signal: null },
      { workerId: 1, code: 7, signal: null },
      { workerId: 3, code: 7, signal: null },
    ]);
    expect(parseTaskExit('srun: error: n1: task 0: Segmentation fault (core dumped)')?.exits[0]?.signal).toBe('SIGSEGV');
  });

  it('ignores other lines', () => {
    expect(parseTaskExit('srun: Job step aborted: Waiting up to 32 seconds for job step to finish.')).toBeUndefined();
    expect(parseTaskExit('hello from worker 1')).toBeUndefined();
    expect(expandTaskList('5')).toEqual([5]);
  });
});
