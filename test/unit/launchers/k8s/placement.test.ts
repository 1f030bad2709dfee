import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { KubeApi } from '../../../../src/launchers/k8s/kube-api.js';
import { jobMasterPodProblem } from '../../../../src/launchers/k8s/placement.js';

/** The API, as far as jobMasterPodProblem reads it: the job master container's log. */
function apiWithLog(log: string, asked: unknown[] = []): KubeApi {
  const core = {
    readNamespacedPodLog: async (req: unknown) => {
      asked.push(req);
      return log;
    },
  };
  return { namespace: 'ns', core } as unknown as KubeApi;
}

const pod = (status: Partial<V1ContainerStatus>): V1Pod => ({
  metadata: { name: 'job-jm-0' },
  status: { containerStatuses: [{ name: 'jobmaster', image: 'i', imageID: '', ready: false, restartCount: 0, ...status }] },
});

describe('why a job master pod will not answer', () => {
  it('is nothing while it starts or runs', async () => {
    expect(await jobMasterPodProblem(apiWithLog(''), pod({ state: { waiting: { reason: 'ContainerCreating' } } }))).toBeUndefined();
    expect(await jobMasterPodProblem(apiWithLog(''), pod({ state: { running: {} } }))).toBeUndefined();
  });

  it('names a state that waiting will not mend, with the end of the previous run\'s log', async () => {
    const asked: unknown[] = [];
    const crash = pod({ restartCount: 3, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 40s' } }, lastState: { terminated: { exitCode: 2 } } });
    expect(await jobMasterPodProblem(apiWithLog('twister2: spec.json: workers: expected a number\n', asked), crash)).toBe(
      'the job master container of pod ns/job-jm-0 exited with code 2 before it answered; the end of its log:\ntwister2: spec.json: workers: expected a number',
    );
    expect(asked).toEqual([{ namespace: 'ns', name: 'job-jm-0', container: 'jobmaster', tailLines: 20, previous: true }]);
    const pull = pod({ state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "twister2/worker:9"' } } });
    expect(await jobMasterPodProblem(apiWithLog(''), pull)).toBe('the job master container of pod ns/job-jm-0 is ImagePullBackOff: Back-off pulling image "twister2/worker:9" before it answered');
  });
});
