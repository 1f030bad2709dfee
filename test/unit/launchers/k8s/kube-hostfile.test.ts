import { describe, expect, it } from 'vitest';
import { hostfileFromPods } from '../../../../src/launchers/k8s/kube-hostfile.js';

const pod = (name: string, ip: string | undefined, phase = 'Running', ready = true, deleting = false) => ({
  metadata: { name, ...(deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}) },
  status: { phase, ...(ip ? { podIP: ip } : {}), conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
});

describe('hostfileFromPods', () => {
  it('lists the pod IPs in ordinal order with the slots per pod', () => {
    expect(hostfileFromPods([pod('j-w0-2', '10.0.0.7'), pod('j-w0-0', '10.0.0.5'), pod('j-w0-1', '10.0.0.9')], 3, 2)).toEqual({
      lines: ['10.0.0.5 slots=2', '10.0.0.9 slots=2', '10.0.0.7 slots=2'],
    });
  });

  it('names the pods not yet Running, Ready, with an IP, or going away; ignores ordinals beyond the group', () => {
    const items = [pod('j-w0-0', '10.0.0.5', 'Pending'), pod('j-w0-1', undefined), pod('j-w0-2', '10.0.0.7', 'Running', false), pod('j-w0-3', '10.0.0.8', 'Running', true, true), pod('j-w0-4', '10.0.0.9'), pod('j-w0-5', '10.0.0.1')];
    expect(hostfileFromPods(items, 5, 1)).toEqual({ missing: [0, 1, 2, 3] });
  });
});
