// Job master recovery on Kubernetes (recovery-run.mjs), N=4: the job master in its pod (the default placement),
// its journal in a ConfigMap; its container's process SIGKILLed, the kubelet's restart of it (here the test pod
// runner's, with the kubelet's back-off) and the workers re-attached; and the cost of that journal (journal-cost.mjs). A real control plane with KWOK nodes, whose
// pods the pod runner runs as processes of this machine (test/env). Runs after k8s.mjs, whose build it reuses.
// Prints one JSON line on stdout.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { ConfigMapJournalStore } from '../dist/launchers/k8s/configmap-journal.js';
import { kubeApi } from '../dist/launchers/k8s/kube-api.js';
import { jobNames } from '../dist/launchers/k8s/names.js';
import { journalCost } from './journal-cost.mjs';
import { measureRecovery, recoveryRuns } from './recovery-run.mjs';

const REPEATS = Number(process.env.BENCH_RECOVERY_REPEATS ?? 3);
const ROOT = path.dirname(fileURLToPath(new URL('../package.json', import.meta.url)));
const NS = `bench-recovery-${process.pid}`;

const { tsImport } = await import('tsx/esm/api');
const { startKubeCluster, KUBERNETES_VERSION, KWOK_VERSION } = await tsImport('../test/env/kube-cluster.ts', import.meta.url);
const { startPodNetwork } = await tsImport('../test/env/kube-pod-network.ts', import.meta.url);
const { startPodRunner } = await tsImport('../test/env/kube-pod-runner.ts', import.meta.url);
const { testCacheDir } = await tsImport('../test/env/s3-server.ts', import.meta.url);

const marker = path.join(testCacheDir(), `k8s-${KUBERNETES_VERSION}`, '.twister2-ready');
if (!existsSync(marker) || readFileSync(marker, 'utf8').trim() !== `kubernetes=v${KUBERNETES_VERSION} kwok=${KWOK_VERSION}`) {
  process.stdout.write(JSON.stringify({ k8sRecovery: { error: 'no Kubernetes binaries (k8s.mjs builds them: bash scripts/build-k8s.sh)' } }) + '\n');
  process.exit(0);
}

let cluster;
let network;
let runner;
const stopAll = async () => {
  await runner?.stop().catch(() => undefined);
  await network?.stop().catch(() => undefined);
  await cluster?.stop().catch(() => undefined);
};
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => void Promise.race([stopAll(), sleep(8000)]).then(() => process.exit(1)));

const logDir = mkdtempSync(path.join(os.tmpdir(), 't2-bench-k8s-recovery-'));
cluster = await startKubeCluster({ nodes: [{ name: 'n1' }, { name: 'n2' }] });
await cluster.request('POST', '/api/v1/namespaces', { metadata: { name: NS } });
// Pods are refused until the namespace's default service account exists.
for (let i = 0; i < 300; i++) {
  const sa = await cluster.request('GET', `/api/v1/namespaces/${NS}/serviceaccounts/default`, undefined, [404]);
  if (sa.status === 200) break;
  await sleep(100);
}
network = await startPodNetwork({ kubeconfigFile: cluster.kubeconfigFile, namespace: NS });
runner = await startPodRunner({ kubeconfigFile: cluster.kubeconfigFile, namespace: NS, logDir, pathMap: { '/opt/twister2': ROOT }, beforeStart: (pod) => network.attach(pod), restart: true });

/** The job's size, from the spec the client kept. */
const workersOf = (jobDir) => JSON.parse(readFileSync(path.join(jobDir, 'spec.json'), 'utf8')).workers;
const jobMasterLog = (jobId) => path.join(logDir, `${jobNames(jobId).jobMaster}-0-jobmaster.log`);
/** The pod's job master process once it is up (it says so in its log, which each run appends to), as in test/faults/k8s-faults.test.ts. */
const hooks = {
  jobMasterPid(jobId) {
    const runs = runner.processes().filter((p) => p.pod.startsWith(jobNames(jobId).jobMaster) && p.container === 'jobmaster');
    const log = jobMasterLog(jobId);
    const up = existsSync(log) ? readFileSync(log, 'utf8').split('job master listening at').length - 1 : 0;
    const current = runs.at(-1);
    return current && current.exitCode === undefined && up === runs.length ? current.pid : undefined;
  },
  logFiles: (jobId, jobDir) => Array.from({ length: workersOf(jobDir) }, (_, id) => [id, path.join(logDir, `${jobNames(jobId).workers(0)}-${id}-worker-0.log`)]),
  ended: (jobId) => !runner.processes().some((p) => p.pod.startsWith(jobNames(jobId).jobMaster) && p.exitCode === undefined),
};

let recovery;
let journal;
try {
  const spec = { cluster: 'kubernetes', resources: { cpu: 0.1, memory: '64Mi' }, kubernetes: { namespace: NS, kubeconfig: cluster.kubeconfigFile } };
  // Warm-up (not recorded): a fresh control plane's first StatefulSet and pods, the compiled dist modules.
  await measureRecovery(2, spec, hooks).catch((err) => process.stderr.write(`k8s recovery warm-up: ${err.message.split('\n')[0]}\n`));
  recovery = await recoveryRuns([4], REPEATS, spec, (line) => process.stderr.write(`k8s ${line}\n`), hooks).catch((err) => ({ error: err.message }));
  if (recovery.error) {
    process.stderr.write(`k8s recovery failed; the pod runner says: ${runner.errors().join('; ') || 'nothing'}\n`);
    const execs = await cluster.request('GET', `/apis/kwok.x-k8s.io/v1alpha1/namespaces/${NS}/execs`);
    const pods = await cluster.request('GET', `/api/v1/namespaces/${NS}/pods`);
    process.stderr.write(`pods: ${JSON.stringify(pods.body.items.map((p) => [p.metadata.name, p.spec.nodeName, p.status.phase, p.status.podIP, p.metadata.deletionTimestamp]))}\n`);
    process.stderr.write(`execs: ${JSON.stringify(execs.body).slice(0, 1500)}\nprocesses: ${JSON.stringify(runner.processes().map((p) => [p.pod, p.container, p.pid, p.exitCode, p.error]))}\n`);
  }
  // The cost of that journal: a ConfigMap patched at each commit (journal-cost.mjs).
  await cluster.request('POST', `/api/v1/namespaces/${NS}/configmaps`, { metadata: { name: 'bench-journal' }, data: {} });
  const store = new ConfigMapJournalStore(kubeApi({ namespace: NS, kubeconfig: cluster.kubeconfigFile }), 'bench-journal');
  journal = await journalCost('Kubernetes ConfigMap', store).catch((err) => ({ error: err.message }));
} finally {
  await stopAll();
  rmSync(logDir, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify({ k8sRecovery: recovery, k8sJournal: journal }) + '\n');
process.exit(0);
