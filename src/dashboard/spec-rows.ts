/**
 * A job's spec as rows to display. The spec the job directory and the package hold has no credentials
 * (client/secrets.ts keeps them apart); keys that name a secret are still left out, in case one got in.
 */
export function specRows(spec: unknown): Array<[string, string]> {
  if (typeof spec !== 'object' || spec === null) return [];
  const s = spec as Record<string, unknown>;
  const rows: Array<[string, string]> = [];
  const add = (label: string, value: unknown) => {
    if (value === undefined || value === null) return;
    rows.push([label, typeof value === 'string' ? value : JSON.stringify(value, redact)]);
  };
  add('name', s.name);
  add('cluster', s.cluster);
  add('workers', s.workers);
  const worker = s.worker as Record<string, unknown> | undefined;
  add('worker', worker?.module ?? worker?.command);
  add('resources', s.resources);
  add('job master', (s.jobMaster as Record<string, unknown> | undefined)?.placement);
  add('driver', (s.driver as Record<string, unknown> | undefined)?.module);
  add('uploader', (s.uploader as Record<string, unknown> | undefined)?.kind);
  add('timeouts', s.timeouts);
  add('dashboard', (s.dashboard as Record<string, unknown> | undefined)?.url);
  // The cluster's own section is named as the cluster is (kubernetes, slurm, nomad, mpi, local).
  if (typeof s.cluster === 'string') add(`${s.cluster} settings`, s[s.cluster]);
  return rows;
}

const SECRET = /token|secret|password|credential|key$/i;

function redact(key: string, value: unknown): unknown {
  return SECRET.test(key) ? '(hidden)' : value;
}
