// The Kubernetes control-plane start-up benchmark's part of docs/benchmarks.md and of the summary.
import { fmt, fmtSummary, summarize } from './stats.mjs';

const sec = (x) => (Number.isFinite(x) ? `${(x / 1000).toFixed(1)} s` : 'n/a');
const MODES = { statefulset: 'StatefulSet', pods: 'plain pods' };
const COMPONENTS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'etcd', 'bench'];

function modeFigures(s) {
  const cpu = Object.fromEntries(COMPONENTS.map((c) => [c, summarize((s.cpuMs ?? []).map((x) => x[c]).filter(Number.isFinite))]));
  return {
    runs: s.runningMs?.length ?? 0,
    created: summarize(s.createdMs ?? []),
    exist: summarize(s.allExistMs ?? []),
    scheduled: summarize(s.scheduledMs ?? []),
    running: summarize(s.runningMs ?? []),
    deleted: summarize(s.deleteMs ?? []),
    cpu,
    cpuTotal: summarize((s.cpuMs ?? []).map((x) => COMPONENTS.reduce((a, c) => a + (x[c] ?? 0), 0))),
  };
}

function figures(m) {
  return m.results.map((r) => {
    const sts = modeFigures(r.statefulset);
    const pods = modeFigures(r.pods);
    // Of the medians: both modes run alternately in the same repeats.
    return { n: r.n, sts, pods, ratio: pods.running.median / sts.running.median, failures: r.failures ?? [] };
  });
}

/** The faster mode at the largest N, as a sentence. */
function verdict(f, m) {
  const big = f[f.length - 1];
  if (!big) return '';
  const { sts, pods } = big;
  const perPodCpu = pods.cpu.bench.median / big.n;
  if (Math.abs(big.ratio - 1) < 0.1) {
    return `At N=${big.n} neither mode is clearly faster (plain pods / StatefulSet = ${fmt(big.ratio)}×, within this machine's noise); ` +
      `the StatefulSet costs the submitting process far less (${fmt(sts.cpu.bench.median)} vs ${fmt(pods.cpu.bench.median)} ms of CPU), so it stays the better default.`;
  }
  if (big.ratio > 1) {
    return `**At scale the StatefulSet is faster: keep it the default for large jobs.** At N=${big.n} all pods were Running after ${sec(sts.running.median)} with a StatefulSet ` +
      `against ${sec(pods.running.median)} with plain pods (${fmt(big.ratio)}×). With plain pods the submitting process issues every create itself ` +
      `(${m.createConcurrency} in flight, ${fmt(perPodCpu)} ms of its CPU per pod: @kubernetes/client-node makes a new https.Agent, hence a new TLS connection, for every request, and serializes every pod) and its last create returned ` +
      `after ${sec(pods.created.median)}, where the StatefulSet controller had all ${big.n} pods created after ${sec(sts.exist.median)}. Plain pods gain nothing at start-up.`;
  }
  return `**At scale plain pods are faster.** At N=${big.n} all pods were Running after ${sec(pods.running.median)} with plain pods against ${sec(sts.running.median)} ` +
    `with a StatefulSet (StatefulSet / plain pods = ${fmt(1 / big.ratio)}×), at ${fmt(perPodCpu)} ms of the submitting process's CPU per pod (${m.createConcurrency} creates in flight); ` +
    'prefer plain pods for large jobs if that client-side cost is acceptable.';
}

export function k8sSection(m) {
  if (!m || m.error) return `Not measured: ${m?.error ?? 'no data'}.`;
  const f = figures(m);
  const fail = (x) => (x.failures.length ? `${x.failures.length}: ${x.failures.join('; ').slice(0, 300)}` : '0');
  const main = [
    '| workers N (1 per pod) | StatefulSet: all Running | plain pods: all Running | ratio plain pods / StatefulSet | deletion, StatefulSet | deletion, plain pods | runs per mode | failed runs |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...f.map(
      (x) =>
        `| ${x.n} | **${fmtSummary(x.sts.running)}** | **${fmtSummary(x.pods.running)}** | **${fmt(x.ratio)}×** | ${fmtSummary(x.sts.deleted)} | ${fmtSummary(x.pods.deleted)} | ${x.sts.runs} / ${x.pods.runs} | ${fail(x)} |`,
    ),
  ];
  const detail = [
    '| N | mode | client\'s creates returned | all N pods exist | all scheduled | all Running | CPU: apiserver | controller-manager | scheduler | kwok | etcd | bench process | sum |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...f.flatMap((x) =>
      Object.entries(MODES).map(([k, label]) => {
        const s = k === 'statefulset' ? x.sts : x.pods;
        return `| ${x.n} | ${label} | ${fmt(s.created.median)} | ${fmt(s.exist.median)} | ${fmt(s.scheduled.median)} | ${fmt(s.running.median)} | ${COMPONENTS.map((c) => fmt(s.cpu[c].median)).join(' | ')} | ${fmt(s.cpuTotal.median)} |`;
      }),
    ),
  ];
  return [
    ...main,
    '',
    `Times in ms, as median (min–max); the ratio is of the medians. Kubernetes ${m.kubernetes}, kwok ${m.kwok}, ${m.nodes} KWOK nodes (${m.node.cpu} CPUs, ${m.node.memory}, ${m.node.pods} pods each), ` +
      `${m.cpus} CPUs shared by every component and the bench; the control plane started in ${fmt(m.startSeconds)} s.`,
    '',
    '**What the numbers include**: the API server (admission, RBAC, etcd writes, watches), the controller-manager (StatefulSet controller, garbage collector and the other controllers), ' +
      'the scheduler binding every pod, and kwok acting as the kubelets (it marks each bound pod Running with a pod IP). **No container runs**: image pulls, sandbox and container ' +
      'start-up and the twister2 worker runtime are not in these numbers (see (a) for the runtime), so this is the control-plane floor of a twister2 job on Kubernetes. ' +
      `Each run is timed from the client's first create (the root ConfigMap) until a watch of the job's worker pods has seen all N Running. **StatefulSet**: the launcher's objects ` +
      '(`rootConfigMap`, then `jobObjects`: Secret, worker ServiceAccount, Role, RoleBinding, headless Service, worker StatefulSet with `podManagementPolicy: Parallel`), one pod per worker ' +
      `(resources ${m.resources.cpu} CPU / ${m.resources.memory}). **Plain pods**: the same root, Secret, account and Service, then N \`workerPod()\` creates issued by the bench process through the ` +
      `launcher's \`createObject\` (@kubernetes/client-node), at most ${m.createConcurrency} in flight. **Deletion**: from deleting the root until the garbage collector (and kwok, for the ` +
      'pods\' graceful deletion) removed every worker pod. Every run has a fresh namespace (deleted, and gone, before the next run); the modes alternate which goes first; one ' +
      'unrecorded warm-up run of each mode at N=16 comes first. A failed run is recorded here and run again. Knobs: `BENCH_K8S_SIZES` (default `16,128,1024`), `BENCH_K8S_REPEATS` ' +
      '(default 3), `BENCH_K8S_BIG_REPEATS` (runs at N ≥ 512, default 2), `BENCH_K8S_CREATE_CONCURRENCY` (default 32). The binaries come from scripts/build-k8s.sh (cached; tens of minutes cold).',
    '',
    verdict(f, m),
    '',
    'Where the time goes (medians, ms from the first create; CPU time in ms per process from `/proc/<pid>/stat` over the same span, "bench process" being the client that creates the objects and watches):',
    '',
    ...detail,
  ].join('\n');
}

export function k8sNotes(m) {
  if (!m || m.error || !m.results?.length) return [];
  const f = figures(m);
  const big = f[f.length - 1];
  const busiest = (s) => COMPONENTS.filter((c) => c !== 'bench').reduce((a, c) => (s.cpu[c].median > s.cpu[a].median ? c : a), 'kube-apiserver');
  return [
    `- **Kubernetes control plane** (no containers): ${big.n} pods were Running after ${sec(big.sts.running.median)} from a StatefulSet and ${sec(big.pods.running.median)} as plain pods ` +
      `created by the client (${fmt(big.ratio)}×). On ${m.cpus} cores shared with each other (and with the machine's other work), the processes used ${fmt(big.sts.cpuTotal.median / 1000)} s of CPU in the ${sec(big.sts.running.median)} ` +
      `for the StatefulSet, most of it in ${busiest(big.sts)} (${sec(big.sts.cpu[busiest(big.sts)].median)}); all pods were scheduled after ${sec(big.sts.scheduled.median)} and ` +
      `the rest until Running went to kwok's ${big.n} pod status updates through the same busy API server. Deleting the root removed the ${big.n} pods in ${sec(big.sts.deleted.median)} / ${sec(big.pods.deleted.median)}.`,
  ];
}

export function k8sSummary(m) {
  if (!m || m.error) return [`  k8s: FAILED: ${m?.error ?? 'no data'}`];
  return figures(m).map(
    (x) =>
      `  k8s N=${String(x.n).padEnd(5)} StatefulSet ${fmtSummary(x.sts.running).padEnd(24)} plain pods ${fmtSummary(x.pods.running).padEnd(24)} ratio ${fmt(x.ratio)}× ` +
      `(deletion ${fmt(x.sts.deleted.median)} / ${fmt(x.pods.deleted.median)})`,
  );
}
