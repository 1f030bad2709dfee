/**
 * Runs `tick` now and then `pollMs` after each run ends (never two at once), until stop(), which waits for a
 * run in progress. Resolves once the first run ended. The test environment's watchers poll the API this way.
 */
export async function startPollLoop(tick: () => Promise<void>, pollMs: number): Promise<{ stop(): Promise<void> }> {
  let stopped = false;
  let ticking: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const loop = () => {
    if (stopped) return;
    ticking = tick().finally(() => {
      if (!stopped) timer = setTimeout(loop, pollMs);
    });
  };
  loop();
  await ticking;
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await ticking.catch(() => undefined);
    },
  };
}
