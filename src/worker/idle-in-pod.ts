import type { JobMasterClient } from '../protocol/jobmaster-client.js';

/**
 * A finished worker in a pod must not exit: the kubelet restarts the container of a pod whenever it exits
 * (a StatefulSet's restartPolicy is Always), as Nomad restarts a service job's task, and a restarted finished
 * worker has nothing to do. So it waits, doing nothing, until its pod or task is stopped (SIGTERM), which the
 * job's release does, also once the job ended.
 * It still asks after its job master as a running worker's heartbeats would (a discovery request every
 * `heartbeatTimeoutMs / 4`): resolves once the job master did not answer for `heartbeatTimeoutMs / 2`, so
 * that the caller ends a job whose job master is gone.
 */
export async function idleUntilJobMasterGone(client: JobMasterClient, heartbeatTimeoutMs: number): Promise<void> {
  let failingSince: number | undefined;
  await new Promise<void>((resolve) => {
    let asking = false;
    const ask = async () => {
      if (asking) return;
      asking = true;
      const answered = await client.workers().then(
        () => true,
        () => false,
      );
      asking = false;
      const now = Date.now();
      failingSince = answered ? undefined : (failingSince ?? now);
      if (failingSince !== undefined && now - failingSince >= heartbeatTimeoutMs / 2) {
        clearInterval(timer);
        resolve();
      }
    };
    const timer = setInterval(() => void ask(), Math.max(50, Math.floor(heartbeatTimeoutMs / 4)));
  });
}
