import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { files } from '../../job/job-store.js';
import { JobSecretsSchema, type JobSecrets } from '../../job/secrets.js';
import { PackageError, UsageError } from '../../errors.js';
import { ENV } from '../../job/worker-environment.js';
import { hostJobMaster } from '../../jobmaster/host.js';
import { exitCodes } from '../../jobmaster/main.js';
import { TERMINAL_JOB_STATES, type JobStatus } from '../../protocol/messages.js';
import { kubernetesSection } from './section.js';
import type { JobSpec } from '../../spec/schema.js';
import { parseSpec } from '../../spec/validate.js';
import { createUploader } from '../../uploader/registry.js';
import { PackageRefSchema, type PackageRef, type Uploader } from '../../uploader/uploader.js';
import { sha256Of } from '../../worker/fetch/http-download.js';
import { waitForCopy } from '../../worker/fetch/package-fetch.js';
import { recordJobEnd } from './job-end-event.js';
import { KubernetesLauncher } from './k8s-launcher.js';
import { ConfigMapJournalStore } from './configmap-journal.js';
import { kubeApi, type KubeApi } from './kube-api.js';
import { jobNames } from './names.js';
import { DRIVER_LINE_PREFIX } from './driver-lines.js';
import { POD_ENV } from './objects/index.js';

/** How long the job master waits for the client to copy the package into its pod. */
const COPY_DEADLINE_MS = 10 * 60_000;
/** How long a job master whose job ended waits for a client to ask how it ended, before it removes the job. */
const LINGER_MS = 10_000;
/** Left in the pod's work dir (an emptyDir, which outlives a container restart) once the job master started. */
const STARTED_MARKER = 'started';

/**
 * `twister2 jobmaster --in-cluster`: the job master in its pod (jobMasterStatefulSet). The client created
 * every object of the job and put the job in the root ConfigMap and the Secret, which reach this process as
 * environment and files; the job master runs it with the pod's service account and listens on the pod IP,
 * behind the job master Service the workers were given. With `uploader.kind: local` the client copies the
 * package into this pod, and the job master copies it on into the worker pods; other uploaders stored it
 * where the workers fetch it, and the job master deletes it at the end.
 */
export async function runInClusterJobMaster(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const need = (name: string): string => {
    const v = env[name];
    if (!v) throw new UsageError(`${name} is not set: \`twister2 jobmaster --in-cluster\` runs in the job master pod the kubernetes launcher creates`);
    return v;
  };
  const jobId = need(ENV.jobId);
  const specFile = env[ENV.jobSpecFile];
  const specText = specFile && existsSync(specFile) ? readFileSync(specFile, 'utf8') : need(ENV.jobSpec);
  const stored = parseSpec(JSON.parse(specText), 'the job\'s root ConfigMap');
  const k8s = kubernetesSection(stored);
  // The admin secret: only this pod gets it; the workers' pods get the worker token (a key of its own).
  const token = need(ENV.jobSecret);
  const workersRef = PackageRefSchema.parse(JSON.parse(need(ENV.packageRef)));
  const uploaderSecrets = env[ENV.uploaderSecrets];
  const secrets = uploaderSecrets ? JobSecretsSchema.parse(JSON.parse(uploaderSecrets)) : {};
  const workDir = need(ENV.workDir);
  const jobDir = path.join(workDir, 'job');
  await mkdir(path.join(jobDir, files.logs), { recursive: true });

  // The job's state is journaled in a ConfigMap of the job, which outlives this container and this pod: a
  // job master restarted by the kubelet, or started in a new pod by the StatefulSet, carries on from it.
  const api = kubeApi(k8s, { inCluster: true });
  const store = new ConfigMapJournalStore(api, jobNames(jobId).journal);
  const launched = (await store.peek()).some((r) => r.t === 'package');
  const marker = path.join(jobDir, STARTED_MARKER);
  if (existsSync(marker)) console.error(`job ${jobId}: the job master container was restarted; carrying on from the journal`);
  else {
    if (launched) console.error(`job ${jobId}: the job master pod was replaced (deleted or evicted); carrying on from the journal ConfigMap`);
    await writeFile(marker, new Date().toISOString());
  }

  // A copied package was copied into the first pod; the workers have theirs (a new worker pod cannot get one).
  let packageFile = '';
  if (workersRef.kind === 'copied') {
    const copied = path.join(workDir, workersRef.file);
    packageFile = launched && !existsSync(copied) ? copied : await receivePackage(copied, workersRef);
  }
  const spec = { ...stored, jobMaster: { ...stored.jobMaster, host: env[POD_ENV.podIp] || '0.0.0.0', port: k8s.jobMasterPort } };
  const launcher = new KubernetesLauncher({ inCluster: true });
  // Ending the job deletes this pod, and the final status with it: wait (a while) until a client asked after
  // the end (a short job may end before the client that submitted it first got through), then leave the
  // status in an Event for a client that comes later. Before the root goes: this Role goes with it.
  let seen = () => {};
  const clientSawEnd = new Promise<void>((resolve) => (seen = resolve));
  let finalStatus = (): JobStatus | undefined => undefined;
  launcher.holdRelease(async () => {
    await Promise.race([clientSawEnd, new Promise((r) => setTimeout(r, LINGER_MS).unref())]);
    const status = finalStatus();
    if (!status) return;
    await recordJobEnd(api, status, env[POD_ENV.podName] ?? jobNames(jobId).jobMaster).catch((err: Error) =>
      console.error(`job ${jobId}: ${err.message}`),
    );
  });
  let ended = (): boolean => false;
  const running = await hostJobMaster(
    {
      jobId,
      spec,
      secrets,
      jobDir,
      packageFile,
      packageSha256: workersRef.sha256,
      packageSize: workersRef.size,
      token,
      // storage.persistent.logs: this pod mounts the volume (jobMasterPersistentVolume) and copies the logs into it.
      persistentMount: env[ENV.persistentMount] || undefined,
      onRequest: ({ proxied, caller }) => proxied && caller === 'admin' && ended() && seen(),
      // This pod's job directory is not the client's: the client takes the driver's lines from this container's log.
      onDriverLine: (line) => process.stdout.write(`${DRIVER_LINE_PREFIX}${line}\n`),
      durable: {
        where: env[POD_ENV.podName] ?? jobNames(jobId).jobMaster,
        store,
        onFenced: (err: Error) => {
          console.error(`job ${jobId}: ${err.message}; stopping`);
          process.exit(5);
        },
      },
    },
    launcher,
    await uploaderFor(jobId, spec, secrets, workersRef, packageFile),
  );
  ended = () => TERMINAL_JOB_STATES.includes(running.jobMaster.state);
  finalStatus = () => running.jobMaster.status();
  console.log(`job ${jobId}: job master listening at ${running.url}`);
  // The pod is deleted: with the job's root (`twister2 kill`, a worker whose job master vanished), the job
  // ends; alone (`kubectl delete pod`, an eviction, a drained node), the job goes on in the pod the
  // StatefulSet starts next, from the journal: this one just goes, as if it had crashed.
  const stop = async () => {
    if (!TERMINAL_JOB_STATES.includes(running.jobMaster.state) && (await rootStays(api, jobNames(jobId).root))) {
      console.error(`job ${jobId}: the job master pod is being deleted while the job's root stays; the job carries on in the next job master pod`);
      process.exit(exitCodes.RUNNING);
    }
    running.jobMaster.kill('the job master pod was deleted');
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
  const status = await running.ended;
  console.log(`job ${jobId} ended ${status.state}: ${status.message ?? ''}`);
  return exitCodes[status.state];
}

/** Whether the job's root ConfigMap is there and not being deleted; when the API cannot say, no (the job ends as before). */
async function rootStays(api: KubeApi, root: string): Promise<boolean> {
  try {
    const cm = await api.core.readNamespacedConfigMap({ name: root, namespace: api.namespace });
    return !cm.metadata?.deletionTimestamp;
  } catch {
    return false;
  }
}

/** The client's copy of the package in this pod, once complete and verified. */
async function receivePackage(file: string, ref: PackageRef): Promise<string> {
  await waitForCopy(file, COPY_DEADLINE_MS);
  const sha256 = await sha256Of(file);
  if (sha256 !== ref.sha256) throw new PackageError(`the package copied into the job master pod has sha256 ${sha256}, not ${ref.sha256}: it changed on the way`);
  return file;
}

/**
 * The package is where the workers find it already: "uploading" hands them that reference (for a copied
 * package, this pod's copy, which the launcher copies on into each worker pod), and delete() removes what
 * the client uploaded.
 */
async function uploaderFor(jobId: string, spec: JobSpec, secrets: JobSecrets, ref: PackageRef, packageFile: string): Promise<Uploader> {
  if (ref.kind === 'copied') {
    return { upload: async () => ({ kind: 'file', path: packageFile, sha256: ref.sha256, size: ref.size }), delete: async () => {} };
  }
  const uploader = await createUploader(spec, secrets);
  uploader.adopt?.(jobId);
  return { upload: async () => ref, delete: () => uploader.delete() };
}
