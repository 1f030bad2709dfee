import type { AllocationMetric } from './nomad-api.js';

/**
 * Nomad's reasons for not placing a task group, in the words `nomad job status` uses, e.g.
 * "workers: 2 allocations not placed: 1/1 nodes evaluated; Resources exhausted on 1 node: memory".
 */
export function describePlacementFailures(failed: Record<string, AllocationMetric> | null | undefined, queued: Record<string, number> = {}): string | undefined {
  if (!failed || Object.keys(failed).length === 0) return undefined;
  return Object.entries(failed)
    .map(([group, m]) => {
      const parts: string[] = [];
      const n = queued[group];
      parts.push(`${group}: ${n ? `${n} allocation${n === 1 ? '' : 's'} not placed` : 'allocations not placed'}`);
      if (m.NodesEvaluated !== undefined) parts.push(`${m.NodesEvaluated} node${m.NodesEvaluated === 1 ? '' : 's'} evaluated`);
      if (m.NodesEvaluated === 0 && m.NodesAvailable) {
        const dcs = Object.entries(m.NodesAvailable).map(([dc, k]) => `${dc}: ${k}`).join(', ');
        parts.push(`no node in the job's datacenters/node pool is eligible${dcs ? ` (available: ${dcs})` : ''}`);
      }
      for (const [what, k] of Object.entries(m.ClassFiltered ?? {})) parts.push(`class "${what}" filtered ${k} node${k === 1 ? '' : 's'}`);
      for (const [what, k] of Object.entries(m.ConstraintFiltered ?? {})) parts.push(`constraint ${what} filtered ${k} node${k === 1 ? '' : 's'}`);
      if (m.NodesExhausted) parts.push(`resources exhausted on ${m.NodesExhausted} node${m.NodesExhausted === 1 ? '' : 's'}`);
      for (const [what, k] of Object.entries(m.DimensionExhausted ?? {})) parts.push(`dimension "${what}" exhausted on ${k} node${k === 1 ? '' : 's'}`);
      for (const q of m.QuotaExhausted ?? []) parts.push(`quota exhausted: ${q}`);
      return parts.join('; ');
    })
    .join(' | ');
}

/**
 * When GPUs (resources.gpus, a device request) are why allocations were not placed: which device, how many, and
 * the fix. Nomad says "missing devices" (no node has the device) or names a devices dimension (too few left).
 */
export function deviceShortage(failed: Record<string, AllocationMetric> | null | undefined, device: { name: string; count: number } | undefined): string | undefined {
  if (!failed || !device) return undefined;
  const blamed = Object.values(failed).some((m) => [...Object.keys(m.ConstraintFiltered ?? {}), ...Object.keys(m.DimensionExhausted ?? {})].some((k) => /device/i.test(k)));
  if (!blamed) return undefined;
  return `no node has ${device.count} free "${device.name}" device${device.count === 1 ? '' : 's'} for each worker, which resources.gpus: ${device.count} asks for; set resources.gpus: 0, or nomad.gpuDevice to the device your Nomad clients fingerprint (\`nomad node status -verbose\` lists them, e.g. nvidia/gpu)`;
}
