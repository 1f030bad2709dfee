import { mkdirSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const LIVE = '.live';

/**
 * A worker's hold on its host's scratch work directory (the unpacked package, per-worker dirs): taken
 * before the package is fetched, released when the worker process ends, however it ends (normal exit,
 * SIGTERM from scancel or the job master, its job master gone). The last worker on the host to release it
 * removes the directory, so a killed job leaves no scratch behind on its nodes. Each hold is a file
 * `<work dir>/.live/<host>-<pid>`; a hold of a dead process on this host (SIGKILLed) does not count. Holds
 * of other hosts, should the directory be shared, always count. Synchronous: it runs in exit paths.
 */
export class WorkDirLease {
  private released = false;

  private constructor(
    readonly workDir: string,
    private readonly marker: string,
  ) {}

  static take(workDir: string): WorkDirLease {
    const dir = path.join(workDir, LIVE);
    const marker = path.join(dir, `${os.hostname()}-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(marker, '');
    return new WorkDirLease(workDir, marker);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    try {
      unlinkSync(this.marker);
      const others = readdirSync(path.join(this.workDir, LIVE)).filter((name) => holderAlive(name));
      if (others.length === 0) rmSync(this.workDir, { recursive: true, force: true });
    } catch {
      // Already removed by another worker that ended at the same moment, or not ours to remove.
    }
  }
}

function holderAlive(name: string): boolean {
  const m = /^(.*)-(\d+)$/.exec(name);
  if (!m || m[1] !== os.hostname()) return true;
  try {
    process.kill(Number(m[2]), 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Releases the lease when this process exits (process.exit in any path, or the event loop running dry). */
export function releaseAtExit(lease: WorkDirLease): void {
  process.once('exit', () => lease.release());
}
