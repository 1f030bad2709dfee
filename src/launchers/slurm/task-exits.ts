import type { WorkerExit } from '../launcher.js';

/**
 * srun reports tasks that end badly on its stderr, e.g.
 *   srun: error: node1: task 2: Killed
 *   srun: error: node1: tasks 0-1,3: Exited with exit code 1
 * Task N of the workers' step is worker N, so these lines are how a batch job's worker exits reach the
 * job master without waiting for a heartbeat to go missing. Tasks that exit 0 are not reported (the
 * worker runtime reports its own completion).
 */
const TASK_EXIT = /^srun: error: ([^:]+): tasks? ([0-9,-]+): (.+)$/;
const SIGNALS: Readonly<Record<string, NodeJS.Signals>> = {
  Killed: 'SIGKILL',
  Terminated: 'SIGTERM',
  Aborted: 'SIGABRT',
  'Segmentation fault': 'SIGSEGV',
  Interrupt: 'SIGINT',
  Hangup: 'SIGHUP',
  'Bus error': 'SIGBUS',
};

export interface TaskExitLine {
  node: string;
  exits: WorkerExit[];
}

export function parseTaskExit(line: string): TaskExitLine | undefined {
  const m = TASK_EXIT.exec(line.trim());
  if (!m) return undefined;
  const [, node, list, what] = m as unknown as [string, string, string, string];
  const code = /^Exited with exit code (\d+)$/.exec(what);
  const signal = SIGNALS[what.replace(/ \(core dumped\)$/, '')];
  if (!code && !signal) return undefined;
  return {
    node,
    exits: expandTaskList(list).map((workerId) => ({ workerId, code: code ? Number(code[1]) : null, signal: signal ?? null })),
  };
}

/** "0-2,5" → [0, 1, 2, 5]. */
export function expandTaskList(list: string): number[] {
  const ids: number[] = [];
  for (const part of list.split(',')) {
    const [from, to] = part.split('-').map(Number) as [number, number | undefined];
    for (let id = from; id <= (to ?? from); id++) ids.push(id);
  }
  return ids;
}
