// The targets of issue 14 ("fast start"), each with the figure this run measured: the table at the top of
// docs/benchmarks.md. A figure a section did not produce is "not measured", never guessed.
import { fmt, summarize } from './stats.mjs';
import { cliFigures, manyFigures } from './report-peers.mjs';

const med = (a) => summarize((a ?? []).filter(Number.isFinite)).median;
const ratioOf = (a, b) => med((a ?? []).map((t, i) => t / b?.[i]));
const at = (list, n) => (Array.isArray(list) ? list.find((r) => r.n === n) : undefined);
const results = (section) => (Array.isArray(section) ? section : section?.results);

/** [target, measured text, met: true/false/undefined] */
function targets(data) {
  const t = [];
  const ratio = (label, value, limit) => t.push([label, Number.isFinite(value) ? `${fmt(value)}×` : 'not measured', Number.isFinite(value) ? value <= limit : undefined]);
  for (const n of [16, 64]) {
    const r = at(results(data.startup), n);
    ratio(`local: \`submit()\` → all ${n} past the 1st barrier ≤ 1.5× N × \`node -e 0\``, r && ratioOf(r.passedMs, r.floorMs), 1.5);
  }
  const big = results(data.startup)?.at(-1);
  ratio(`local: a worker's CPU, start to exit ≤ 1.5× \`node -e 0\`${big ? ` (N=${big.n})` : ''}`, big && med(big.workerCpuMs) / med(big.floorCpuMs), 1.5);
  const cli = data.cliE2e && !data.cliE2e.error ? cliFigures(data.cliE2e) : [];
  const c16 = cli.find((x) => x.n === 16);
  ratio('CLI end to end, N=16 ≤ 2× the floor', c16?.ratio.median, 2);
  for (const x of cli) {
    const peers = [x.dask.median, x.ray.median];
    const measured = peers.every(Number.isFinite) && Number.isFinite(x.twister2.median);
    t.push([`CLI end to end, N=${x.n}: faster than Dask and Ray`, measured ? `${fmt(x.twister2.median)} ms vs Dask ${fmt(x.dask.median)}, Ray ${fmt(x.ray.median)}` : 'not measured', measured ? peers.every((p) => x.twister2.median < p) : undefined]);
  }
  for (const n of [16, 64]) {
    const r = at(results(data.mpi), n);
    ratio(`MPI, N=${n} ≤ 1.3× bare \`mpirun -np N node -e 0\``, r && ratioOf(r.passedMs, r.floorMs), 1.3);
  }
  const s = at(results(data.slurm), 16);
  ratio('Slurm, N=16: all past the 1st barrier ≤ 1.2× bare `sbatch --wrap \'srun node -e 0\'` until it left the queue', s && med(s.passedMs) / med(s.floorEndedMs), 1.2);
  const nm = at(results(data.nomad), 16);
  ratio('Nomad, N=16 ≤ 1.3× the bare batch job of N tasks', nm && med(nm.passedMs) / med(nm.floorMs), 1.3);
  // Judged on the channel with shared connections; a connection per simulated worker is shown beside it.
  const jmCase = (variant) => (Array.isArray(data.jobmaster) ? data.jobmaster.find((c) => c.n === 10000 && (c.variant ?? 'http') === variant) : undefined);
  const totalOf = (c) => {
    const runs = c?.runs.filter((r) => !r.stalled) ?? [];
    return runs.length ? med(runs.map((r) => r.totalMs)) : NaN;
  };
  const perRegOf = (c) => (c ? med(c.runs.map((r) => r.serverCpuRegisterMs / c.n)) : NaN);
  const jm = jmCase('channel');
  const each = jmCase('channel-each');
  const total = totalOf(jm);
  const beside = (v, f) => (Number.isFinite(v) ? `; a connection per worker: ${f(v)}` : '');
  t.push([
    'job master: 10,000 simulated workers register and pass one barrier < 1 s',
    Number.isFinite(total) ? `${fmt(total)} ms over ${jm.connections} connections${beside(totalOf(each), (v) => `${fmt(v)} ms`)}` : 'not measured',
    Number.isFinite(total) ? total < 1000 : undefined,
  ]);
  const perReg = perRegOf(jm);
  t.push([
    'job master: ≤ 0.1 ms of its CPU per registration (N=10,000)',
    Number.isFinite(perReg) ? `${perReg.toFixed(3)} ms${beside(perRegOf(each), (v) => `${v.toFixed(3)} ms, with its connection`)}` : 'not measured',
    Number.isFinite(perReg) ? perReg <= 0.1 : undefined,
  ]);
  const many = data.manyJobs && !data.manyJobs.error ? manyFigures(data.manyJobs) : undefined;
  ratio(`many jobs: ${data.manyJobs?.jobs ?? 16} × ${data.manyJobs?.workers ?? 4} submitted together ≤ 1.5× the floor`, many?.ratio.median, 1.5);
  return t;
}

export function targetsSection(data) {
  const rows = targets(data).map(([what, measured, met]) => `| ${what} | ${measured} | ${met === undefined ? '—' : met ? 'met' : '**missed**'} |`);
  return ['| target | measured (median) | |', '| --- | --- | --- |', ...rows].join('\n');
}

export function targetsSummary(data) {
  const all = targets(data);
  return [`  targets: ${all.filter(([, , m]) => m === true).length} met, ${all.filter(([, , m]) => m === false).length} missed, ${all.filter(([, , m]) => m === undefined).length} not measured`];
}
