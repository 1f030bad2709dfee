import type { CoreV1Event } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { findJobEnd, recordJobEnd } from '../../../../src/launchers/k8s/job-end-event.js';
import type { KubeApi } from '../../../../src/launchers/k8s/kube-api.js';
import type { JobStatus } from '../../../../src/protocol/messages.js';

/** A stand-in for the events API only; the real one is exercised in test/integration/k8s.test.ts. */
function eventsApi(): { api: KubeApi; stored: CoreV1Event[] } {
  const stored: CoreV1Event[] = [];
  const core = {
    createNamespacedEvent: async ({ body }: { body: CoreV1Event }) => (stored.push(body), body),
    listNamespacedEvent: async () => ({ items: stored }),
  };
  return { api: { core, namespace: 'ns' } as unknown as KubeApi, stored };
}

const JOB = 'train-20261122073606-e203';

function status(workers: number, state: JobStatus['state'] = 'FAILED'): JobStatus {
  return {
    jobId: JOB,
    name: 'train',
    cluster: 'kubernetes',
    state,
    numWorkers: workers,
    registered: workers,
    workers: Array.from({ length: workers }, (_, workerId) => ({ workerId, state: 'COMPLETED' as const, restarts: 0, message: `exited with code 0 on pod ${JOB}-w-${workerId}` })),
    startedAt: '2026-11-28T10:00:00.000Z',
    endedAt: '2026-11-28T10:01:00.000Z',
    message: 'worker 3 exited with code 1',
  };
}

describe('the job-ended Event', () => {
  it('is a Warning on the root ConfigMap for a failed job, with the status read back whole', async () => {
    const { api, stored } = eventsApi();
    const s = status(4);
    await recordJobEnd(api, s, `${JOB}-jm-0`);
    expect(stored[0]).toMatchObject({
      reason: 'Twister2JobEnded',
      type: 'Warning',
      involvedObject: { kind: 'ConfigMap', name: JOB, namespace: 'ns' },
      message: `job ${JOB} ended FAILED: worker 3 exited with code 1`,
      metadata: { labels: { 'twister2.io/job': JOB } },
    });
    expect(await findJobEnd(api, JOB)).toEqual(s);
  });

  it('drops the workers of a status too large for an annotation, and ignores events it cannot read', async () => {
    const { api, stored } = eventsApi();
    stored.push({ reason: 'Twister2JobEnded', metadata: { annotations: { 'twister2.io/status': '{not json' } }, involvedObject: {} });
    const s = status(5000, 'SUCCEEDED');
    await recordJobEnd(api, s, 'jm');
    expect(Buffer.byteLength(stored[1]!.metadata!.annotations!['twister2.io/status']!)).toBeLessThan(256 * 1024);
    expect(await findJobEnd(api, JOB)).toEqual({ ...s, workers: [] });
    expect(await findJobEnd(api, 'another-job')).toBeUndefined();
  });
});
