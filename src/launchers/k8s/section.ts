import { z } from 'zod';
import { SpecError, type SpecProblem } from '../../errors.js';
import type { JobSpec } from '../../spec/schema.js';
import { sizeSchema } from '../../spec/size-schema.js';

/**
 * The `kubernetes` section: where the cluster is (kubeconfig, context, namespace), the worker image, how
 * many workers share a pod, where pods may go and what volumes they get. Per-worker CPU, memory and GPUs
 * come from `resources` (each worker container asks for them); `workers` must be a multiple of
 * `workersPerPod` and `cpuPinning` needs whole CPUs: those two checks need the whole spec, see
 * kubernetesProblems() below.
 */

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

const dnsLabel = (what: string) => {
  const rule = `expected ${what}: 1 to 63 lowercase letters, digits or "-", starting and ending with a letter or digit`;
  return z.string({ error: rule }).max(63, rule).regex(DNS_LABEL, rule);
};
const dnsSubdomain = (what: string) => {
  const rule = `expected ${what}: lowercase letters, digits, "-" and ".", starting and ending with a letter or digit (at most 253)`;
  return z.string({ error: rule }).max(253, rule).regex(DNS_SUBDOMAIN, rule);
};

/** A label key as Kubernetes takes it: an optional DNS-subdomain prefix and "/", then a name of at most 63. */
export function isLabelKey(key: string): boolean {
  const slash = key.indexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

export function isLabelValue(value: string): boolean {
  return value === '' || (value.length <= 63 && LABEL_NAME.test(value));
}

const LABEL_KEY_RULE = 'expected a label key such as "disktype" or "topology.kubernetes.io/zone" (a name of at most 63 letters, digits, "-", "_", ".", with an optional DNS prefix and "/")';
const LABEL_VALUE_RULE = 'expected a label value: at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit';
const labelKey = z.string({ error: LABEL_KEY_RULE }).refine(isLabelKey, LABEL_KEY_RULE);
const labelValue = z.string({ error: LABEL_VALUE_RULE }).refine(isLabelValue, LABEL_VALUE_RULE);

const port = (what: string) =>
  z.number({ error: `expected ${what}: a port number from 1 to 65535` }).int(`expected ${what}: a whole port number`).min(1, `expected ${what} from 1 to 65535`).max(65535, `expected ${what} from 1 to 65535`);

const size = (example: string) => sizeSchema([example, '512Mi'], { positive: true });

const absolutePath = (what: string) => z.string({ error: `expected ${what}: an absolute path` }).startsWith('/', `expected ${what}: an absolute path such as "/data"`);

const NODE_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt'] as const;

/** One node-label requirement, as in a nodeSelectorTerm's matchExpressions. */
const nodeRequirementShape = {
  key: labelKey,
  operator: z.enum(NODE_OPERATORS, { error: `expected an operator: ${NODE_OPERATORS.join(', ')}` }),
  values: z.array(labelValue, { error: 'expected a list of label values' }).optional(),
};

function checkRequirement(r: { key: string; operator: (typeof NODE_OPERATORS)[number]; values?: string[] | undefined }, ctx: z.RefinementCtx): void {
  const values = r.values ?? [];
  if ((r.operator === 'In' || r.operator === 'NotIn') && values.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['values'], message: `operator "${r.operator}" needs values: the label values to match, e.g. values: ["a100"]` });
  }
  if ((r.operator === 'Exists' || r.operator === 'DoesNotExist') && values.length > 0) {
    ctx.addIssue({ code: 'custom', path: ['values'], message: `operator "${r.operator}" tests only whether node label "${r.key}" is there; remove values` });
  }
  if (r.operator === 'Gt' || r.operator === 'Lt') {
    if (values.length !== 1 || !/^-?\d+$/.test(values[0] ?? '')) {
      ctx.addIssue({ code: 'custom', path: ['values'], message: `operator "${r.operator}" needs exactly one whole number in values, e.g. values: ["4"] (got ${JSON.stringify(r.values ?? [])})` });
    }
  }
}

const NodeRequirementSchema = z.strictObject(nodeRequirementShape).superRefine(checkRequirement);

const PreferredNodeRequirementSchema = z
  .strictObject({
    weight: z.number({ error: 'expected a weight from 1 to 100' }).int('expected a whole weight from 1 to 100').min(1, 'expected a weight from 1 to 100').max(100, 'expected a weight from 1 to 100'),
    ...nodeRequirementShape,
  })
  .superRefine(checkRequirement);

const TolerationSchema = z
  .strictObject({
    key: labelKey.optional(),
    operator: z.enum(['Equal', 'Exists'], { error: 'expected an operator: Equal or Exists' }).default('Equal'),
    value: labelValue.optional(),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute'], { error: 'expected an effect: NoSchedule, PreferNoSchedule or NoExecute (leave it out for all)' }).optional(),
    tolerationSeconds: z.number().int().min(0).optional().describe('only with effect NoExecute'),
  })
  .superRefine((t, ctx) => {
    if (t.operator === 'Exists' && t.value !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['value'], message: 'operator "Exists" matches any value of the taint; remove value (or use operator "Equal")' });
    }
    if (t.operator === 'Equal' && t.key === undefined) {
      ctx.addIssue({ code: 'custom', path: ['key'], message: 'a toleration without a key matches every taint only with operator "Exists"; add key or set operator: Exists' });
    }
    if (t.tolerationSeconds !== undefined && t.effect !== 'NoExecute') {
      ctx.addIssue({ code: 'custom', path: ['tolerationSeconds'], message: 'tolerationSeconds applies only to effect "NoExecute"; set effect: NoExecute or remove tolerationSeconds' });
    }
  });

export const PodPlacementSchema = z.strictObject({
  nodeSelector: z
    .record(z.string(), z.string({ error: 'expected a label value (a string; quote numbers and booleans)' }), { error: 'expected a map of node label keys to values, e.g. { disktype: ssd }' })
    .superRefine((sel, ctx) => {
      for (const [key, value] of Object.entries(sel)) {
        if (!isLabelKey(key)) ctx.addIssue({ code: 'custom', path: [key], message: `"${key}" is not a label key: ${LABEL_KEY_RULE.replace(/^expected /, 'use ')}` });
        else if (!isLabelValue(value)) ctx.addIssue({ code: 'custom', path: [key], message: `"${value}" is not a label value: ${LABEL_VALUE_RULE.replace(/^expected /, 'use ')}` });
      }
    })
    .default({}),
  /** All must hold (one nodeSelectorTerm). */
  requiredNodeAffinity: z.array(NodeRequirementSchema, { error: 'expected a list of { key, operator, values }' }).default([]),
  preferredNodeAffinity: z.array(PreferredNodeRequirementSchema, { error: 'expected a list of { weight, key, operator, values }' }).default([]),
  /** any: wherever the scheduler puts them; same-node: every pod on one node; spread: each pod on its own node. */
  workers: z.enum(['any', 'same-node', 'spread'], { error: 'expected "any", "same-node" (all worker pods on one node) or "spread" (each worker pod on its own node)' }).default('any'),
  tolerations: z.array(TolerationSchema, { error: 'expected a list of { key, operator, value, effect }' }).default([]),
  priorityClassName: dnsSubdomain('a PriorityClass name').optional(),
});

const PersistentSchema = z
  .strictObject({
    nfs: z.strictObject({ server: z.string({ error: 'expected the NFS server\'s host name or IP' }).min(1), path: absolutePath('the exported directory'), readOnly: z.boolean().default(false) }).optional(),
    pvc: z
      .strictObject({
        storageClass: dnsSubdomain('a StorageClass name'),
        size: size('10Gi'),
      })
      .optional(),
    mountPath: absolutePath('where workers see the volume').default('/persistent'),
    /** Keep the PVC (and its data) after the job; otherwise it is deleted with the job. */
    keep: z.boolean().default(false),
  })
  .superRefine((p, ctx) => {
    if ((p.nfs === undefined) === (p.pvc === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: p.nfs === undefined ? 'missing storage: set persistent.nfs ({ server, path }) or persistent.pvc ({ storageClass, size })' : 'set either persistent.nfs or persistent.pvc, not both',
      });
    }
    if (p.nfs && p.keep) {
      ctx.addIssue({ code: 'custom', path: ['keep'], message: 'keep applies to a pvc; twister2 never deletes the data on an NFS server, so remove keep' });
    }
  });

/** Where the worker containers share the package and scratch files; always mounted (medium Memory with volumes.memory). */
export const SHARED_MOUNT = '/twister2/shared';
export const DISK_MOUNT = '/twister2/scratch';

export const VolumesSchema = z
  .strictObject({
    /** A RAM-backed emptyDir at /twister2/shared (counts against the pod's memory); without it that directory is on the node's disk. */
    memory: z.strictObject({ sizeLimit: size('1Gi').optional() }).optional(),
    /** A disk-backed emptyDir, deleted with the pod. */
    disk: z.strictObject({ sizeLimit: size('10Gi'), mountPath: absolutePath('where workers see the scratch volume').default(DISK_MOUNT) }).optional(),
    persistent: PersistentSchema.optional(),
  })
  .superRefine((v, ctx) => {
    const mounts: Array<[string, string]> = [['the shared volume', SHARED_MOUNT]];
    if (v.disk) mounts.push(['volumes.disk', v.disk.mountPath]);
    if (v.persistent) mounts.push(['volumes.persistent', v.persistent.mountPath]);
    for (let i = 1; i < mounts.length; i++) {
      const [name, path] = mounts[i]!;
      for (const [other, otherPath] of mounts.slice(0, i)) {
        if (path === otherPath || path.startsWith(`${otherPath}/`) || otherPath.startsWith(`${path}/`)) {
          const key = name === 'volumes.disk' ? 'disk' : 'persistent';
          ctx.addIssue({ code: 'custom', path: [key, 'mountPath'], message: `"${path}" overlaps ${other} at "${otherPath}"; choose another mountPath` });
        }
      }
    }
  });

export const KubernetesSpecSchema = z.strictObject({
  namespace: dnsLabel('a namespace name').default('default'),
  /** A kubeconfig file; default: $KUBECONFIG, then ~/.kube/config, then the in-cluster service account. */
  kubeconfig: z.string({ error: 'expected the path of a kubeconfig file' }).min(1).optional(),
  context: z.string({ error: 'expected a context name from the kubeconfig' }).min(1).optional(),
  image: z
    .string({ error: 'expected a container image such as "twister2/worker:0.1.0"' })
    .regex(/^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/, 'expected a container image such as "registry.example.com/twister2/worker:0.1.0" (no spaces)')
    .default('twister2/worker:0.1.0'),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never'], { error: 'expected Always, IfNotPresent or Never' }).default('IfNotPresent'),
  imagePullSecrets: z.array(dnsSubdomain('the name of a Secret of type kubernetes.io/dockerconfigjson'), { error: 'expected a list of Secret names' }).default([]),
  /** Worker containers per pod; they share the pod's network and the /twister2/shared volume. */
  workersPerPod: z
    .number({ error: 'expected a whole number of workers per pod, at least 1' })
    .int('expected a whole number of workers per pod')
    .min(1, 'expected at least 1 worker per pod')
    .max(64, 'expected at most 64 workers per pod')
    .default(1),
  podPlacement: PodPlacementSchema.prefault({}),
  /** Guaranteed QoS (requests = limits, whole CPUs), so the kubelet's static CPU manager pins each worker to its own cores. */
  cpuPinning: z.boolean().default(false),
  /** The extended resource resources.gpus asks for. */
  gpuResource: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/, 'expected an extended resource name such as "nvidia.com/gpu" or "amd.com/gpu"')
    .default('nvidia.com/gpu'),
  volumes: VolumesSchema.prefault({}),
  /** Outside traffic to the workers: a NodePort Service to containerPort of every worker pod. */
  nodePort: z
    .strictObject({
      containerPort: port('the port the worker listens on'),
      nodePort: z.number({ error: 'expected a node port from 30000 to 32767' }).int().min(30000, 'expected a node port from 30000 to 32767 (the default range)').max(32767, 'expected a node port from 30000 to 32767 (the default range)').optional(),
    })
    .optional(),
  /** Run the workers as one OpenMPI job: sshd in every pod, mpirun in the first; ranks are worker IDs. */
  openmpi: z.boolean().default(false),
  jobMasterPort: port('the job master\'s port').default(7575),
});

export type KubernetesSpec = z.output<typeof KubernetesSpecSchema>;
export type KubernetesSpecInput = z.input<typeof KubernetesSpecSchema>;
export type PodPlacement = KubernetesSpec['podPlacement'];
export type KubernetesVolumes = KubernetesSpec['volumes'];

/** The part of the spec the cross-field checks read. */
export interface KubernetesCheckInput {
  workers: number;
  resources: { cpu: number };
  kubernetes?: KubernetesSpec | undefined;
}

/**
 * Checks that need more than the section: workers a multiple of workersPerPod, whole CPUs for cpuPinning.
 * Paths are from the spec's root. The schema's superRefine can call refineKubernetesSpec; the launcher
 * calls kubernetesSection, which throws them as a SpecError.
 */
export function kubernetesProblems(spec: KubernetesCheckInput): Array<{ path: Array<string | number>; message: string }> {
  const k = spec.kubernetes;
  if (!k) return [];
  const problems: Array<{ path: Array<string | number>; message: string }> = [];
  const wpp = k.workersPerPod;
  if (spec.workers % wpp !== 0) {
    const lower = Math.floor(spec.workers / wpp) * wpp;
    const choices = [lower, lower + wpp].filter((n) => n >= 1).join(' or ');
    problems.push({
      path: ['kubernetes', 'workersPerPod'],
      message: `workers (${spec.workers}) is not a multiple of workersPerPod (${wpp}): every pod holds exactly ${wpp} workers; set workers to ${choices}, or change workersPerPod`,
    });
  }
  if (k.cpuPinning && !Number.isInteger(spec.resources.cpu)) {
    problems.push({
      path: ['kubernetes', 'cpuPinning'],
      message: `cpuPinning needs whole CPUs per worker (Guaranteed QoS, requests = limits) but resources.cpu is ${spec.resources.cpu}; set resources.cpu to ${Math.max(1, Math.floor(spec.resources.cpu))} or ${Math.ceil(spec.resources.cpu)}, or set cpuPinning: false`,
    });
  }
  return problems;
}

/** For the job spec's superRefine: `refineKubernetesSpec(spec, ctx)`. */
export function refineKubernetesSpec(spec: KubernetesCheckInput, ctx: z.RefinementCtx): void {
  for (const p of kubernetesProblems(spec)) ctx.addIssue({ code: 'custom', path: p.path, message: p.message });
}

/** The section of a parsed spec, with its defaults when the spec has none; throws the cross-field problems as a SpecError. */
export function kubernetesSection(spec: JobSpec): KubernetesSpec {
  const k = spec.kubernetes ?? KubernetesSpecSchema.parse({});
  const problems: SpecProblem[] = kubernetesProblems({ ...spec, kubernetes: k }).map((p) => ({ path: p.path.join('.'), message: p.message }));
  if (problems.length > 0) throw new SpecError(problems);
  return k;
}
