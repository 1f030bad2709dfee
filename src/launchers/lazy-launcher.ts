import type { JobEnding, LaunchContext, Launcher, LauncherListener } from './launcher.js';

/** A launcher whose module is loaded on first use, so a heavy cluster client costs nothing to other jobs. */
export class LazyLauncher implements Launcher {
  private loaded: Promise<Launcher> | undefined;

  constructor(private readonly load: () => Promise<Launcher>) {}

  private get target(): Promise<Launcher> {
    this.loaded ??= this.load();
    return this.loaded;
  }

  async start(ctx: LaunchContext, listener: LauncherListener): Promise<void> {
    return (await this.target).start(ctx, listener);
  }

  // Called only where the cluster's capabilities allow scaling (registry.ts), so the target has them.
  async addWorkers(ids: number[]): Promise<void> {
    return (await this.target).addWorkers!(ids);
  }

  async removeWorkers(ids: number[]): Promise<void> {
    return (await this.target).removeWorkers!(ids);
  }

  async release(ending?: JobEnding): Promise<void> {
    // Nothing was started if the module was never loaded.
    if (!this.loaded) return;
    return (await this.loaded).release(ending);
  }
}
