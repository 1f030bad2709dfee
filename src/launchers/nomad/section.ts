import { z } from 'zod';

/**
 * The `nomad` section: where the Nomad cluster is and how the job's one task group asks for its
 * allocations. Per-worker CPU and memory come from `resources` (cpu in cores × nomad.mhzPerCore, memory
 * in MB); GPUs become a Nomad device request. Secrets are not here: the ACL token is read from the
 * environment variable `tokenEnv` names.
 */
const attribute = z.string({ error: 'expected a Nomad attribute such as "${attr.kernel.name}" or "${node.class}"' }).min(1);
const operator = z.enum(['=', '!=', '>', '>=', '<', '<=', 'distinct_hosts', 'distinct_property', 'regexp', 'set_contains', 'set_contains_any', 'version', 'semver', 'is_set', 'is_not_set']);

export const NomadSpecSchema = z.strictObject({
  address: z.url({ error: 'expected the Nomad HTTP API address, e.g. http://127.0.0.1:4646' }).optional().describe('default: $NOMAD_ADDR, else http://127.0.0.1:4646'),
  tokenEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name').default('NOMAD_TOKEN'),
  namespace: z.string().min(1).optional(),
  region: z.string().min(1).optional(),
  datacenters: z.array(z.string().min(1)).min(1).default(['*']),
  nodePool: z.string().min(1).optional(),
  /** batch: runs to completion; service: long-running (streaming) jobs. */
  type: z.enum(['batch', 'service']).default('batch'),
  driver: z.enum(['raw_exec', 'exec', 'docker']).default('raw_exec'),
  image: z.string().min(1).optional().describe('the worker image, for driver: docker'),
  /** More driver settings, passed to Nomad as the task's config (e.g. docker volumes); Nomad validates them. */
  taskConfig: z.record(z.string(), z.unknown(), { error: 'expected a map of driver config keys to values' }).default({}),
  /** Nomad counts CPU in MHz: resources.cpu cores are asked for as cores × mhzPerCore. */
  mhzPerCore: z.number().int().min(1).max(100_000).default(1000),
  /** The device resources.gpus asks for: <type>, <vendor>/<type> or <vendor>/<type>/<model>, as Nomad's device block names it. */
  gpuDevice: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+){0,2}$/, {
      error: (iss) => `expected a Nomad device name: <type>, <vendor>/<type> or <vendor>/<type>/<model>, e.g. "nvidia/gpu" or "gpu"; got ${JSON.stringify(iss.input)}`,
    })
    .default('nvidia/gpu'),
  constraints: z.array(z.strictObject({ attribute: attribute.optional(), operator: operator.default('='), value: z.string().default('') })).default([]),
  affinities: z.array(z.strictObject({ attribute, operator: operator.default('='), value: z.string(), weight: z.number().int().min(-100).max(100).default(50) })).default([]),
  spread: z
    .array(
      z.strictObject({
        attribute,
        weight: z.number().int().min(0).max(100).default(50),
        targets: z.array(z.strictObject({ value: z.string(), percent: z.number().int().min(0).max(100) })).default([]),
      }),
    )
    .default([]),
  /** A job Nomad cannot place fails at once with Nomad's reasons; true waits (QUEUED) for resources instead. */
  waitForResources: z.boolean().default(false),
  tls: z
    .strictObject({
      caCert: z.string().startsWith('/', 'expected an absolute path').optional(),
      clientCert: z.string().startsWith('/', 'expected an absolute path').optional(),
      clientKey: z.string().startsWith('/', 'expected an absolute path').optional(),
      insecure: z.boolean().default(false),
    })
    .optional(),
}).superRefine((n, ctx) => {
  if (n.driver === 'docker' && !n.image) ctx.addIssue({ code: 'custom', path: ['image'], message: 'driver "docker" needs nomad.image (a worker image with node and twister2)' });
  if (n.driver !== 'docker' && n.image) ctx.addIssue({ code: 'custom', path: ['image'], message: `nomad.image is for driver "docker", not "${n.driver}"` });
});

export type NomadSpec = z.output<typeof NomadSpecSchema>;

/** The part of the spec the cross-field checks read. */
export interface NomadCheckInput {
  jobMaster: { placement: string };
  uploader: { kind: string };
  nomad?: NomadSpec | undefined;
}

/**
 * For the job spec's superRefine, when cluster is "nomad": a docker task cannot read this machine's disk,
 * so it needs a package it can download, and a job master in an allocation runs from the job directory.
 */
export function refineNomadSpec(spec: NomadCheckInput, ctx: z.RefinementCtx): void {
  if (spec.nomad?.driver !== 'docker') return;
  if (!['http', 's3'].includes(spec.uploader.kind)) {
    ctx.addIssue({ code: 'custom', path: ['uploader', 'kind'], message: `driver "docker" cannot read the package from this machine's disk (uploader "${spec.uploader.kind}"); use uploader.kind "http" or "s3"` });
  }
  if (spec.jobMaster.placement === 'cluster') {
    ctx.addIssue({
      code: 'custom',
      path: ['nomad', 'driver'],
      message: 'jobMaster.placement "cluster" on nomad runs the job master and the workers from the job directory (driver raw_exec or exec), not driver "docker"; change it, or use jobMaster.placement "client"',
    });
  }
}
