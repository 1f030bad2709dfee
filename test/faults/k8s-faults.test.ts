import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll } from 'vitest';
import { jobNames } from '../../src/launchers/k8s/names.js';
import { ensureKubeBinaries, startKubeCluster, type KubeCluster } from '../env/kube-cluster.js';
import { startPodNetwork, type PodNetwork } from '../env/kube-pod-network.js';
import { startPodRunner, type PodRunner } from '../env/kube-pod-runner.js';
import { ROOT, runCli, tempHome, waitFor } from '../helpers/cli.js';
import type { History } from './checker.js';
import { faultSuite } from './harness.js';

// The fault suite on Kubernetes (README.md): a real control plane with KWOK nodes, whose pods a pod runner
// runs as local processes, restarting exited containers as a kubelet does. The job master runs in its pod
// (`jobMaster.placement: cluster`); the kubelet restarts its container (a SIGKILL), or the StatefulSet starts
// a new pod (the first kill of a run deletes the pod), and it carries on from its journal ConfigMap. The
// job's output and final status are read as a client reads them: pod logs, `status`.
ensureKubeBinaries();
const ns = `t2faults-${process.pid}`;
let cluster: KubeCluster;
let network: PodNetwork;
let runner: PodRunner;
let logDir: string;
let core: CoreV1Api;

beforeAll(async () => {
  cluster = await startKubeCluster({ nodes: [{ name: 'n1' }, { name: 'n2' }] });
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfigFile);
  core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  await waitFor('the default service account', async () => (await core.listNamespacedServiceAccount({ namespace: ns })).items.some((s) => s.metadata?.name === 'default'), 30_000);
  logDir = tempHome();
  network = await startPodNetwork({ kubeconfigFile: cluster.kubeconfigFile, namespace: ns });
  runner = await startPodRunner({ kubeconfigFile: cluster.kubeconfigFile, namespace: ns, logDir, pathMap: { '/opt/twister2': ROOT }, beforeStart: (pod) => network.attach(pod), restart: true });
}, 180_000);
afterAll(async () => {
  await runner?.stop();
  await network?.stop();
  await cluster?.stop();
});

const TERMINAL = ['SUCCEEDED', 'FAILED', 'KILLED'];
let lastLook = 0;

faultSuite(
  {
    name: 'kubernetes',
    spec: () => ({ cluster: 'kubernetes', resources: { cpu: 0.1, memory: '64Mi' }, kubernetes: { namespace: ns, kubeconfig: cluster.kubeconfigFile } }),
    output: (_home, jobId) =>
      readdirSync(logDir)
        .filter((f) => f.endsWith('.log') && f.startsWith(`${jobNames(jobId).workers(0)}-`))
        .map((f) => readFileSync(path.join(logDir, f), 'utf8'))
        .join('\n'),
    // The running job master container's process, once it is up (took its epoch and listens), as a recorded
    // one is on the other backends: each run says so in the container's log, which the runs append to.
    jobMasterPid(jobId) {
      const runs = runner.processes().filter((p) => p.pod.startsWith(jobNames(jobId).jobMaster) && p.container === 'jobmaster');
      const log = path.join(logDir, `${jobNames(jobId).jobMaster}-0-jobmaster.log`);
      const up = existsSync(log) ? readFileSync(log, 'utf8').split('job master listening at').length - 1 : 0;
      const current = runs.at(-1);
      return current && current.exitCode === undefined && up === runs.length ? current.pid : undefined;
    },
    async finalStatus(home, jobId) {
      // Each look runs the CLI: at most one a second.
      if (Date.now() - lastLook < 1000) return undefined;
      lastLook = Date.now();
      const r = await runCli(['status', jobId, '--json'], home);
      const status = JSON.parse(r.stdout || '{}') as History['final'];
      return TERMINAL.includes(status.state) ? status : undefined;
    },
    // The first kill of a run deletes the job master's pod instead: the StatefulSet starts a new one, whose
    // job master carries on from the journal ConfigMap (the pod's emptyDir went with the old pod). Not a later
    // one: it may come as the job ends, and a pod deleted after the end is rightly not replaced.
    async killJobMaster(jobId, pid, nth) {
      if (nth > 0) {
        process.kill(pid, 'SIGKILL');
        return;
      }
      await core.deleteNamespacedPod({ name: `${jobNames(jobId).jobMaster}-0`, namespace: ns });
    },
    async leftovers(jobId) {
      const res = await cluster.request('GET', `/api/v1/namespaces/${ns}/pods?labelSelector=twister2.io/job=${jobId}`);
      return ((res.body as { items?: { metadata: { name: string } }[] }).items ?? []).map((p) => `pod ${p.metadata.name}`);
    },
  },
  6,
);
