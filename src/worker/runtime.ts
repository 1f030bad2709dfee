import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandWorkerVariables, ENV, hostVolumePathOf, readWorkerEnvironment, storageVariables, visibleGpus, type WorkerStorage } from '../job/worker-environment.js';
import { Twister2Error } from '../errors.js';
import { primaryAddress } from '../net/primary-address.js';
import type { HealthCheck, JobSpec } from '../spec/schema.js';
import type { WorkerContext, WorkerContextEvents } from './context.js';
import type { HealthCheckData } from './health-check.js';
import { JobMasterLink } from './job-master-link.js';
import { redact } from './fetch/redact-url.js';
import { fetchPackage } from './fetch/package-fetch.js';
import { pickFreePorts } from './free-ports.js';
import { specOfPackage } from './spec-view.js';
import { markPhase } from './phases.js';
import { idleUntilJobMasterGone } from './idle-in-pod.js';
import { workerMessaging } from './messaging.js';
import { endTreeOnStopSignals, ProgramTree, untilExit } from './process-tree.js';
import { runCommand, runModule } from './program-runner.js';
import { endOrphanedJob, heldGpuIds, jobMasterUrl, resolveWorkerId, takeGpus } from '../launchers/worker-sides.js';
import { releaseAtExit, WorkDirLease } from './work-dir-lease.js';
import { prepareStorage } from './storage.js';
import { mountedStorageOf } from '../job/storage.js';

const CLI_SCRIPT = fileURLToPath(new URL('../../bin/twister2.js', import.meta.url));

/** Exit codes of the worker runtime, so a launcher (or a person reading `ps`) can tell why it ended. */
export const WorkerExit = { ok: 0, programFailed: 1, setupFailed: 2, jobMasterLost: 3, stopped: 4 } as const;

/** How long the program's processes get to exit on SIGTERM before they are SIGKILLed. */
const PROGRAM_STOP_GRACE_MS = 1000;

/**
 * The worker runtime as a process (worker/main.ts, `twister2 worker`): SIGTERM and SIGINT end the
 * program's processes, then the runtime.
 */
export function runWorkerProcess(): Promise<number> {
  const tree = ProgramTree.mark(process.env);
  const stop = endTreeOnStopSignals(tree, PROGRAM_STOP_GRACE_MS);
  // A set-up that fails because it was stopped meanwhile is no set-up failure: the stop decides the exit.
  return runWorker(process.env, tree).catch((err: unknown) => (stop.stopping() ? untilExit() : Promise.reject(err)));
}

/**
 * The program every launcher starts: fetch the package, find its ID, register, heartbeat, run the user
 * program, report how it went. Returns the process exit code.
 */
export async function runWorker(env: NodeJS.ProcessEnv = process.env, tree = ProgramTree.mark(env)): Promise<number> {
  // Whatever the program started never outlives the runtime, however the runtime ends (a crash too).
  process.once('exit', () => tree.killNow());
  const wenv = readWorkerEnvironment(env);
  const { workerId, source } = await resolveWorkerId(env);
  // A container of a pod, which the kubelet restarts whenever it exits (a StatefulSet's restartPolicy is
  // Always), or a task of a Nomad service job: there a finished worker idles until its job ends instead of exiting.
  const restartedOnExit = source === ENV.podName || env[ENV.idleWhenDone] === '1';
  if (wenv.scratchWorkDir) releaseAtExit(WorkDirLease.take(wenv.workDir));
  const masterUrl = await jobMasterUrl(env, wenv.registrationTimeoutMs, (line) => console.error(`[twister2 worker ${workerId}] ${line}`));
  const link = new JobMasterLink(masterUrl, wenv.token, workerId);
  let packageDir: string;
  let spec: JobSpec;
  let storage: WorkerStorage;
  try {
    await takeGpus(env);
    const fetched = await fetchPackage(wenv.packageRef, wenv.workDir, {
      deadlineMs: wenv.registrationTimeoutMs,
      log: (line) => console.error(`[twister2 worker ${workerId}] ${line}`),
    });
    packageDir = fetched.dir;
    if (fetched.fetchedHere) {
      const ref = wenv.packageRef;
      const from = ref.kind === 'http' ? redact(ref.url) : ref.kind === 'copied' ? `the copy made through the exec API, ${ref.file}` : ref.path;
      console.error(`[twister2 worker ${workerId}] fetched and unpacked the package (${wenv.packageRef.size} bytes) from ${from}`);
    }
    spec = await specOfPackage(fetched.manifest);
    storage = prepareStorage(wenv.jobId, wenv.workDir, spec, { ...mountedStorageOf(env), ...(spec.storage?.persistent?.hostVolume !== undefined ? { persistent: hostVolumePathOf(env) } : {}) });
    markPhase('package ready');
  } catch (err) {
    // Tell the job master why, so the job's failure names the cause and not just an exit code.
    await link.client.setupFailed(workerId, (err as Error).message).catch(() => undefined);
    throw err;
  }

  const tag = `[twister2 worker ${workerId}]`;
  /** A finished worker the cluster would restart: idle until the job ends; should the job master go first, end its job as a running worker would. */
  const idle = async (heartbeatTimeoutMs: number): Promise<number> => {
    await idleUntilJobMasterGone(link.client, heartbeatTimeoutMs);
    console.error(`${tag} stopping: lost the job master`);
    await endOrphanedJob(env, (line) => console.error(`${tag} ${line}`));
    return WorkerExit.jobMasterLost;
  };
  // worker.ports: a free port per name on this host, picked before registering so peers see them at once.
  const ports = await pickFreePorts(spec.worker.ports);
  const gpuIds = await heldGpuIds(env);
  const registered = await link.register(
    {
      workerId,
      host: os.hostname(),
      ip: env[ENV.podIp] || primaryAddress(), // a pod's own IP (Kubernetes downward API), where its peers reach it
      ports,
      node: env[ENV.node] ?? os.hostname(),
      resources: { cpu: spec.resources.cpu, memoryBytes: spec.resources.memory, gpus: spec.resources.gpus },
      pid: process.pid,
      restartCount: wenv.restartCount,
      ...(gpuIds ? { gpuIds } : {}),
    },
    spec.timeouts.registration,
  ).catch((err: unknown) => {
    // A kubelet restarted this finished worker's container.
    if (restartedOnExit && Twister2Error.is(err, 'T2_WORKER_COMPLETED')) return undefined;
    throw err;
  });
  if (!registered) {
    console.error(`${tag} this worker completed already (the cluster restarted it): idle until its job ends`);
    return idle(spec.timeouts.heartbeat);
  }
  const registration = registered;
  markPhase('registered');
  const abort = new AbortController();
  let stopCode: number = WorkerExit.stopped;
  const stopped = new Promise<string>((resolve) =>
    link.once('stop', (reason, lost) => {
      stopCode = lost ? WorkerExit.jobMasterLost : WorkerExit.stopped;
      abort.abort(new Error(reason));
      resolve(reason);
    }),
  );
  const volumes = { work: path.join(wenv.workDir, `worker-${workerId}`), shared: path.join(wenv.workDir, 'shared') };
  await Promise.all([mkdir(volumes.work, { recursive: true }), mkdir(volumes.shared, { recursive: true })]);
  /** What a command worker's program, and a health check's command, run with (made once). */
  let madeEnv: Promise<NodeJS.ProcessEnv> | undefined;
  const commandEnv = () => (madeEnv ??= makeCommandEnv());
  const makeCommandEnv = async () => ({
    ...env,
    ...spec.worker.env,
    // The same twister2 CLI as this runtime, for `twister2 barrier` and `twister2 workers`.
    PATH: `${await writeCliShim(wenv.workDir)}${path.delimiter}${spec.worker.env.PATH ?? env.PATH ?? ''}`,
    ...commandWorkerVariables({
      jobMasterUrl: masterUrl,
      token: wenv.token,
      workerId,
      numWorkers: registration.numWorkers,
      session: registration.session,
      restartCount: registration.restartCount,
      packageDir,
      volumes,
      storage,
      ports,
      recoveryMs: registration.jobMasterRecoveryMs ?? 0,
    }),
  });
  const unhealthy = new Promise<string>((resolve) => link.once('unhealthy', resolve));
  const health = spec.worker.health;
  // A command worker's program is another process: its heartbeats need no thread of their own.
  await link.start(tree.marker, Boolean(spec.worker.module), health && healthCheckData(health, ports, packageDir, await commandEnv()));
  markPhase('heartbeats started');

  let program: Promise<void>;
  if (spec.worker.module) {
    // A module worker runs in this process: what it starts finds its storage as a command worker does.
    Object.assign(env, storageVariables(storage));
    const ctx = makeContext();
    program = runModule(spec.worker, packageDir, ctx);
  } else {
    program = runCommand(spec.worker, packageDir, await commandEnv()).done;
  }

  const outcome = await Promise.race([
    program.then(() => ({ ok: true as const }), (err: Error) => ({ ok: false as const, err })),
    stopped.then((reason) => ({ stopped: reason })),
    // Failed as a crashed program is: ended, reported with the reason, restarted within the budget.
    unhealthy.then((reason) => {
      abort.abort(new Error(reason));
      return { ok: false as const, err: new Error(reason) };
    }),
  ]);
  markPhase('program done');
  if ('stopped' in outcome) {
    console.error(`${tag} stopping: ${outcome.stopped}`);
    await tree.end(PROGRAM_STOP_GRACE_MS);
    if (stopCode === WorkerExit.jobMasterLost) await endOrphanedJob(env, (line) => console.error(`${tag} ${line}`));
    return stopCode;
  }
  link.close();
  // Before reporting: once the last worker reports, the job has ended, and nothing of it may be left.
  const left = await tree.end(PROGRAM_STOP_GRACE_MS);
  if (left) console.error(`${tag} ended ${left} process${left === 1 ? '' : 'es'} the program left running`);
  const message = outcome.ok ? undefined : outcome.err.message;
  if (!outcome.ok) console.error(`${tag} failed: ${message}`);
  try {
    await link.client.complete(workerId, registration.session, outcome.ok, message);
  } catch (err) {
    console.error(`${tag} could not report completion: ${(err as Error).message}`);
    return outcome.ok ? WorkerExit.ok : WorkerExit.programFailed;
  }
  if (outcome.ok && restartedOnExit) return idle(registration.heartbeatTimeoutMs);
  return outcome.ok ? WorkerExit.ok : WorkerExit.programFailed;

  function makeContext(): WorkerContext {
    const messaging = workerMessaging(link.client, workerId, registration.session);
    return {
      jobId: registration.jobId,
      jobName: spec.name,
      workerId,
      get numWorkers() {
        return link.numWorkers;
      },
      restartCount: registration.restartCount,
      config: spec,
      args: spec.worker.args,
      packageDir,
      volumes,
      storage,
      gpus: visibleGpus(env),
      log: {
        info: (...a) => console.log(...a),
        warn: (...a) => console.warn(...a),
        error: (...a) => console.error(...a),
      },
      signal: abort.signal,
      ports,
      async publishPorts(more) {
        await link.client.publishPorts(workerId, registration.session, more);
      },
      async workers(opts = {}) {
        const list = await link.client.workers({ waitForAll: opts.waitForAll ?? true, timeoutMs: opts.timeoutMs ?? spec.timeouts.registration });
        markPhase('discovery');
        return list.workers;
      },
      async barrier(name, opts = {}) {
        await link.client.barrier(name, workerId, registration.session, opts.timeoutMs);
        markPhase('first barrier');
      },
      send: messaging.send,
      messages: messaging.messages,
      on<E extends keyof WorkerContextEvents>(event: E, listener: WorkerContextEvents[E]) {
        link.on(event, listener as never);
      },
    };
  }
}

/** worker.health as the checker runs it; a port name is one of the ports the runtime picked (worker.ports). */
function healthCheckData(h: HealthCheck, ports: Record<string, number>, cwd: string, env: NodeJS.ProcessEnv): HealthCheckData {
  const http = h.http && { port: typeof h.http.port === 'number' ? h.http.port : ports[h.http.port]!, path: h.http.path };
  return { ...h, http, cwd, env };
}

/**
 * A `twister2` on the command worker's PATH that runs this very runtime's CLI with this node, so
 * `twister2 barrier` works whether or not twister2 is installed on the host.
 */
async function writeCliShim(workDir: string): Promise<string> {
  const dir = path.join(workDir, 'bin');
  await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.twister2-${process.pid}`);
  await writeFile(tmp, `#!/bin/sh\nexec '${process.execPath}' '${CLI_SCRIPT}' "$@"\n`);
  await chmod(tmp, 0o755);
  await rename(tmp, path.join(dir, 'twister2'));
  return dir;
}
