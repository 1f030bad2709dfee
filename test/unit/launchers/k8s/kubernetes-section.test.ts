import { describe, expect, it } from 'vitest';
import { SpecError } from '../../../../src/errors.js';
import { kubernetesProblems, kubernetesSection, KubernetesSpecSchema } from '../../../../src/launchers/k8s/section.js';
import { parseSpec } from '../../../../src/spec/validate.js';

const base = { name: 'j', cluster: 'kubernetes', workers: 6, worker: { command: 'true' } };

function problems(raw: Record<string, unknown>): string {
  try {
    kubernetesSection(parseSpec({ ...base, ...raw }));
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return (err as SpecError).message;
  }
  throw new Error('expected a SpecError');
}

describe('kubernetes section', () => {
  it('fills every default', () => {
    expect(kubernetesSection(parseSpec(base))).toMatchInlineSnapshot(`
      {
        "cpuPinning": false,
        "gpuResource": "nvidia.com/gpu",
        "image": "twister2/worker:0.1.0",
        "imagePullPolicy": "IfNotPresent",
        "imagePullSecrets": [],
        "jobMasterPort": 7575,
        "namespace": "default",
        "openmpi": false,
        "podPlacement": {
          "nodeSelector": {},
          "preferredNodeAffinity": [],
          "requiredNodeAffinity": [],
          "tolerations": [],
          "workers": "any",
        },
        "volumes": {},
        "workersPerPod": 1,
      }
    `);
  });

  it('converts sizes and fills nested defaults', () => {
    const k = KubernetesSpecSchema.parse({
      volumes: { memory: { sizeLimit: '1Gi' }, disk: { sizeLimit: '10Gi' }, persistent: { pvc: { storageClass: 'nfs-rwx', size: '5Gi' }, keep: true } },
      podPlacement: { tolerations: [{ key: 'gpu', value: 'yes' }] },
    });
    expect(k.volumes).toEqual({
      memory: { sizeLimit: 2 ** 30 },
      disk: { sizeLimit: 10 * 2 ** 30, mountPath: '/twister2/scratch' },
      persistent: { pvc: { storageClass: 'nfs-rwx', size: 5 * 2 ** 30 }, mountPath: '/persistent', keep: true },
    });
    expect(k.podPlacement.tolerations).toEqual([{ key: 'gpu', operator: 'Equal', value: 'yes' }]);
  });

  it.each([
    [{ kubernetes: { workersPerPod: 4 } }, /kubernetes.workersPerPod: workers \(6\) is not a multiple of workersPerPod \(4\).*set workers to 4 or 8/],
    [{ resources: { cpu: 1.5 }, kubernetes: { cpuPinning: true } }, /kubernetes.cpuPinning: cpuPinning needs whole CPUs .* resources.cpu is 1.5; set resources.cpu to 1 or 2, or set cpuPinning: false/],
    [{ kubernetes: { namespace: 'My_NS' } }, /kubernetes.namespace: expected a namespace name: 1 to 63 lowercase.*\(got "My_NS"\)/],
    [{ kubernetes: { imagePullPolicy: 'always' } }, /kubernetes.imagePullPolicy: expected Always, IfNotPresent or Never \(got "always"\)/],
    [{ kubernetes: { workersPerPod: 0 } }, /kubernetes.workersPerPod: expected at least 1 worker per pod \(got 0\)/],
    [{ kubernetes: { wrkersPerPod: 2 } }, /kubernetes.wrkersPerPod: unknown key "wrkersPerPod" \(did you mean "workersPerPod"\?\)/],
    [{ kubernetes: { podPlacement: { workers: 'together' } } }, /kubernetes.podPlacement.workers: expected "any", "same-node" .* \(got "together"\)/],
    [{ kubernetes: { podPlacement: { nodeSelector: { 'bad key!': 'x' } } } }, /kubernetes.podPlacement.nodeSelector\["bad key!"\]: "bad key!" is not a label key: use a label key such as "disktype"/],
    [{ kubernetes: { podPlacement: { nodeSelector: { zone: 'a b' } } } }, /kubernetes.podPlacement.nodeSelector.zone: "a b" is not a label value/],
    [{ kubernetes: { podPlacement: { requiredNodeAffinity: [{ key: 'zone', operator: 'In' }] } } }, /kubernetes.podPlacement.requiredNodeAffinity\[0\].values: operator "In" needs values/],
    [{ kubernetes: { podPlacement: { requiredNodeAffinity: [{ key: 'zone', operator: 'Exists', values: ['a'] }] } } }, /values: operator "Exists" tests only whether node label "zone" is there; remove values/],
    [{ kubernetes: { podPlacement: { preferredNodeAffinity: [{ weight: 1, key: 'cores', operator: 'Gt', values: ['many'] }] } } }, /preferredNodeAffinity\[0\].values: operator "Gt" needs exactly one whole number/],
    [{ kubernetes: { podPlacement: { preferredNodeAffinity: [{ weight: 500, key: 'zone', operator: 'Exists' }] } } }, /preferredNodeAffinity\[0\].weight: expected a weight from 1 to 100 \(got 500\)/],
    [{ kubernetes: { podPlacement: { tolerations: [{ key: 'gpu', operator: 'Exists', value: 'x' }] } } }, /tolerations\[0\].value: operator "Exists" matches any value/],
    [{ kubernetes: { podPlacement: { tolerations: [{ value: 'x' }] } } }, /tolerations\[0\].key: a toleration without a key matches every taint only with operator "Exists"/],
    [{ kubernetes: { podPlacement: { tolerations: [{ key: 'k', operator: 'Exists', effect: 'NoRun' }] } } }, /tolerations\[0\].effect: expected an effect: NoSchedule, PreferNoSchedule or NoExecute/],
    [{ kubernetes: { volumes: { disk: {} } } }, /kubernetes.volumes.disk.sizeLimit: expected a size such as "10Gi", "512Mi" or a number of bytes \(got nothing\)/],
    [{ kubernetes: { volumes: { disk: { sizeLimit: 'huge' } } } }, /kubernetes.volumes.disk.sizeLimit: "huge" is not a size; use e.g. "10Gi"/],
    [{ kubernetes: { volumes: { persistent: {} } } }, /kubernetes.volumes.persistent: missing storage: set persistent.nfs .* or persistent.pvc/],
    [{ kubernetes: { volumes: { persistent: { nfs: { server: 'n', path: '/x' }, pvc: { storageClass: 's', size: '1Gi' } } } } }, /set either persistent.nfs or persistent.pvc, not both/],
    [{ kubernetes: { volumes: { persistent: { nfs: { server: 'n', path: 'x' } } } } }, /kubernetes.volumes.persistent.nfs.path: expected the exported directory: an absolute path/],
    [{ kubernetes: { volumes: { persistent: { nfs: { server: 'n', path: '/x' }, keep: true } } } }, /kubernetes.volumes.persistent.keep: keep applies to a pvc/],
    [{ kubernetes: { volumes: { disk: { sizeLimit: '1Gi', mountPath: '/twister2/shared/x' } } } }, /kubernetes.volumes.disk.mountPath: "\/twister2\/shared\/x" overlaps the shared volume/],
    [{ kubernetes: { nodePort: { containerPort: 8080, nodePort: 80 } } }, /kubernetes.nodePort.nodePort: expected a node port from 30000 to 32767/],
    [{ kubernetes: { gpuResource: 'gpu' } }, /kubernetes.gpuResource: expected an extended resource name such as "nvidia.com\/gpu"/],
    [{ kubernetes: { podPlacement: { priorityClassName: 'High' } } }, /kubernetes.podPlacement.priorityClassName: expected a PriorityClass name/],
  ])('rejects %j', (raw, pattern) => {
    expect(problems(raw)).toMatch(pattern);
  });

  it('checks the whole spec only where the section is there', () => {
    expect(kubernetesProblems({ workers: 5, resources: { cpu: 0.5 } })).toEqual([]);
    expect(kubernetesProblems({ workers: 6, resources: { cpu: 2 }, kubernetes: KubernetesSpecSchema.parse({ workersPerPod: 3, cpuPinning: true }) })).toEqual([]);
  });
});
