/**
 * The GPUs a Slurm job holds on each of its nodes, from `scontrol -d show job --oneliner`: each node group is
 * `Nodes=<hostlist> CPU_IDs=… Mem=… GRES=<gres>`, where a GPU entry is `gpu[:type]:<count>(IDX:<indexes>)`, e.g.
 * `gpu:2(IDX:0-1)` or `gpu:a100:1(IDX:3),gpu:a100:1(IDX:5)`.
 */
export interface NodeGroupGpus {
  /** The group's nodes as Slurm writes them: a hostlist expression such as `node[01-04],gpu7`. */
  nodes: string;
  /** The node indexes of the job's GPUs on each of those nodes, ascending. */
  gpus: number[];
}

export function jobGpusByNodeGroup(showJobDetail: string): NodeGroupGpus[] {
  const groups: NodeGroupGpus[] = [];
  for (const m of showJobDetail.matchAll(/(?:^|\s)Nodes=(\S+) CPU_IDs=\S* Mem=\S* GRES=(\S*)/g)) {
    const gpus = [...m[2]!.matchAll(/(?:^|,)gpu(?::[^:(,]+)?:\d+\(IDX:([^)]*)\)/g)].flatMap((g) => indexList(g[1]!));
    groups.push({ nodes: m[1]!, gpus: [...new Set(gpus)].sort((a, b) => a - b) });
  }
  return groups;
}

/** `0-1,3` → [0, 1, 3]; `N/A` or an empty list → []. */
export function indexList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) continue;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    for (let i = from; i <= to; i++) out.push(i);
  }
  return out;
}
