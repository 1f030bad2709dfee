import { writeFile } from 'node:fs/promises';
import path from 'node:path';

/** One line of an OpenMPI hostfile. `slots` is undefined when the line leaves it to OpenMPI. */
export interface HostSlots {
  host: string;
  slots: number | undefined;
}

/** The hostfile OpenMPI reads: one `host slots=N` line per host. */
export function renderHostfile(hosts: HostSlots[]): string {
  return hosts.map((h) => (h.slots === undefined ? h.host : `${h.host} slots=${h.slots}`)).join('\n') + '\n';
}

/**
 * Reads a user's OpenMPI hostfile: `host [slots=N] [max_slots=N]` per line, `#` comments. Only what
 * the launcher needs (hosts for the ssh pre-flight, slots for the worker count check); the file itself
 * is passed to mpirun unchanged in meaning.
 */
export function parseHostfile(text: string, source: string): HostSlots[] {
  const hosts: HostSlots[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const [host, ...opts] = line.split(/\s+/);
    let slots: number | undefined;
    for (const opt of opts) {
      const m = /^(slots|max_slots|max-slots|count|cpu)=(\d+)$/.exec(opt);
      if (!m) throw new Error(`${source} line ${i + 1}: cannot read "${opt}" (expected slots=N or max_slots=N)`);
      if (m[1] !== 'max_slots' && m[1] !== 'max-slots') slots = Number(m[2]);
    }
    if (slots === 0) throw new Error(`${source} line ${i + 1}: ${host} has slots=0; give it at least 1 slot or remove the line`);
    hosts.push({ host: host!.replace(/^[^@]*@/, ''), slots });
  });
  if (hosts.length === 0) throw new Error(`${source} names no hosts`);
  return hosts;
}

/** Total slots, or undefined when a line leaves the count to OpenMPI (the number of cores it finds). */
export function totalSlots(hosts: HostSlots[]): number | undefined {
  let n = 0;
  for (const h of hosts) {
    if (h.slots === undefined) return undefined;
    n += h.slots;
  }
  return n;
}

/** Writes `<jobDir>/hostfile` and returns its path. */
export async function writeHostfile(jobDir: string, hosts: HostSlots[]): Promise<string> {
  const file = path.join(jobDir, 'hostfile');
  await writeFile(file, renderHostfile(hosts));
  return file;
}
