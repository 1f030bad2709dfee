import { readdirSync, readFileSync } from 'node:fs';

/**
 * Kills every descendant of this process. A worker's program may start processes of its own, which
 * would outlive the worker when it has to quit (job master lost, job ended): that must not happen.
 * Linux only (reads /proc); elsewhere it does nothing and the launcher's own cleanup applies.
 */
export function killDescendants(signal: NodeJS.Signals = 'SIGKILL', root = process.pid): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Field 4 of /proc/<pid>/stat is the parent; the command name before it may contain spaces.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // It ended while we looked.
    }
  }
  const found: number[] = [];
  const stack = [...(children.get(root) ?? [])];
  while (stack.length) {
    const pid = stack.pop()!;
    found.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  for (const pid of found) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
  return found;
}
