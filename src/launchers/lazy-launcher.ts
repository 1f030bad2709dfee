import type { WorkerInfo } from '../protocol/messages.js';
import type { JobEnding, LaunchContext, Launcher, LauncherListener, ResumedWorker } from './launcher.js';

type OptionalMethod = 'addWorkers' | 'removeWorkers' | 'restartWorker' | 'resume';

/**
 * A launcher whose module is loaded on first use, so a cluster's code and client (got, @kubernetes/client-node)
 * cost nothing to other jobs. It has only the optional methods `has` names, as the launcher it stands for:
 * the job master tells what a launcher can do by which methods it has.
 */
export class LazyLauncher implements Launcher {
  private loaded: Promise<Launcher> | undefined;
  addWorkers?: (ids: number[]) => Promise<void>;
  removeWorkers?: (ids: number[]) => Promise<void>;
  restartWorker?: (id: number, restartCount: number, predecessor?: WorkerInfo) => Promise<void>;
  resume?: (ctx: LaunchContext, listener: LauncherListener, workers: ResumedWorker[], remembered: Record<string, unknown>) => Promise<void>;

  constructor(
    private readonly load: () => Promise<Launcher>,
    has: readonly OptionalMethod[],
  ) {
    // Called only where the cluster's capabilities allow it (registry.ts), so the target has them.
    if (has.includes('addWorkers')) this.addWorkers = async (ids) => (await this.target).addWorkers!(ids);
    if (has.includes('removeWorkers')) this.removeWorkers = async (ids) => (await this.target).removeWorkers!(ids);
    if (has.includes('restartWorker')) this.restartWorker = async (id, n, predecessor) => (await this.target).restartWorker!(id, n, predecessor);
    if (has.includes('resume')) this.resume = async (...a) => (await this.target).resume!(...a);
  }

  private get target(): Promise<Launcher> {
    this.loaded ??= this.load();
    return this.loaded;
  }

  async start(ctx: LaunchContext, listener: LauncherListener): Promise<void> {
    return (await this.target).start(ctx, listener);
  }

  abandon(): void {
    void this.loaded?.then((l) => l.abandon?.());
  }

  async release(ending?: JobEnding): Promise<void> {
    // Nothing was started if the module was never loaded.
    if (!this.loaded) return;
    return (await this.loaded).release(ending);
  }
}
