import { describe, expect, it } from 'vitest';
import { jobLabels, jobNames, jobSelector, MAX_STATEFULSET_NAME, podOrdinal, roleLabels, shorten, workerId, workerSlot } from '../../../../src/launchers/k8s/names.js';

const DNS_1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

describe('Kubernetes names', () => {
  it('derives every name from the job ID', () => {
    const n = jobNames('hello-20261122073606-e203');
    expect({ ...n, workers: n.workers(), nodePort: n.nodePort(), workerPod: n.workerPod(2), group1: n.workers(1) }).toMatchInlineSnapshot(`
      {
        "group1": "hello-20261122073606-e203-w1",
        "jobId": "hello-20261122073606-e203",
        "jobMaster": "hello-20261122073606-e203-jm",
        "jobMasterService": "hello-20261122073606-e203-jm",
        "journal": "hello-20261122073606-e203-journal",
        "nodePort": "hello-20261122073606-e203-w0-np",
        "pvc": "hello-20261122073606-e203-data",
        "role": "hello-20261122073606-e203-jm",
        "roleBinding": "hello-20261122073606-e203-jm",
        "root": "hello-20261122073606-e203",
        "secret": "hello-20261122073606-e203-secret",
        "serviceAccount": "hello-20261122073606-e203-jm",
        "workerAccount": "hello-20261122073606-e203-worker",
        "workerPod": "hello-20261122073606-e203-w0-2",
        "workers": "hello-20261122073606-e203-w0",
      }
    `);
  });

  it('keeps names of the longest job IDs within the limits, unique by the ID\'s tail', () => {
    const id = `${'a'.repeat(40)}-20261122073606-e203`;
    expect(id).toHaveLength(60);
    const n = jobNames(id);
    expect(n.workers()).toBe(`${'a'.repeat(29)}-20261122073606-e203-w0`);
    expect(n.workers().length).toBeLessThanOrEqual(MAX_STATEFULSET_NAME);
    expect(n.jobMaster.length).toBeLessThanOrEqual(MAX_STATEFULSET_NAME);
    for (const name of [n.root, n.secret, n.serviceAccount, n.pvc, n.nodePort(), n.workerPod(99999)]) {
      expect(name.length).toBeLessThanOrEqual(63);
      expect(name).toMatch(DNS_1035);
    }
    expect(jobNames(`${'a'.repeat(40)}-20261122073606-e204`).workers()).not.toBe(n.workers());
  });

  it('starts names with a letter (Services need DNS-1035) and shortens foreign IDs with a hash', () => {
    expect(jobNames('42-20261122073606-e203').workers()).toBe('t2-42-20261122073606-e203-w0');
    expect(shorten('x'.repeat(70), 20)).toMatch(/^x{11}-[0-9a-f]{8}$/);
    expect(() => jobNames('Bad_ID')).toThrow(/not a DNS-1123 label/);
  });

  it('labels the job and its roles', () => {
    expect(jobLabels('j-1')).toEqual({ 'app.kubernetes.io/managed-by': 'twister2', 'twister2.io/job': 'j-1' });
    expect(roleLabels('j-1', 'worker', 1)).toEqual({ ...jobLabels('j-1'), 'twister2.io/role': 'worker', 'twister2.io/worker-group': '1' });
    expect(roleLabels('j-1', 'jobmaster')).toEqual({ ...jobLabels('j-1'), 'twister2.io/role': 'jobmaster' });
    expect(jobSelector('j-1', 'worker')).toBe('app.kubernetes.io/managed-by=twister2,twister2.io/job=j-1,twister2.io/role=worker');
  });

  it('numbers workers by pod ordinal and container, and back', () => {
    expect([0, 1, 2].flatMap((ord) => [0, 1, 2].map((c) => workerId(ord, c, 3)))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(workerId(2, 1, 3, 100)).toBe(107);
    for (const wpp of [1, 3]) {
      for (let id = 10; id < 30; id++) {
        const { ordinal, container } = workerSlot(id, wpp, 10);
        expect(workerId(ordinal, container, wpp, 10)).toBe(id);
      }
    }
    expect(() => workerId(0, 3, 3)).toThrow(RangeError);
    expect(() => workerSlot(5, 3, 10)).toThrow(RangeError);
    expect(podOrdinal('hello-20261122073606-e203-w0-12')).toBe(12);
    expect(podOrdinal('nope')).toBeUndefined();
  });
});
