import { PassThrough, Writable } from 'node:stream';
import { ApiException, Log, type KubeConfig, type V1ContainerStatus } from '@kubernetes/client-node';
import type { TaggedOutputSplitter } from '../mpi/tagged-output.js';
import type { DriverLinesFromJobMaster } from './driver-lines.js';
import { WorkerLogFiles } from '../worker-log-files.js';

/** How often a refused follow is tried again (a container just started may not have a log yet). */
const FOLLOW_ATTEMPTS = 6;
const FOLLOW_RETRY_MS = 500;

/**
 * Where a container's log goes: one worker's log file, mpirun's output split by rank (OpenMPI pod 0), or
 * the driver's lines of a job master's log.
 */
export type LogTarget = { workerId: number } | { mpirun: TaggedOutputSplitter } | { driver: DriverLinesFromJobMaster };

interface Follow {
  pod: string;
  container: string;
  target: LogTarget;
  /** Streams of lines (into the mpirun splitter, the driver's log), ended at close so they write a last partial line. */
  lines: Writable[];
  /** Bytes of this container run's log written to the worker's file so far. */
  received: number;
  ctl?: AbortController;
  /** Where the follow writes: pieces may wait in it after the follow was stopped. */
  stream?: Writable;
}

/** The longest wait for a stopped follow's last pieces to be written. */
const SETTLE_MS = 5000;
/**
 * Before follows are stopped at the end, they may still be delivering: the log is taken as complete once no
 * follow delivered a byte over QUIET_TICKS ticks of TICK_MS (each tick after an I/O poll, so a client whose
 * event loop was held up, e.g. writing to a slow stdout pipe, reads what waits in its sockets first), and
 * never waited for longer than DRAIN_MAX_MS.
 */
const TICK_MS = 100;
const QUIET_TICKS = 5;
const DRAIN_MAX_MS = 60_000;

/**
 * Follows the worker containers' logs through the API server into the job's `logs/worker-N.log`, which
 * the client streams tagged by worker ID (for OpenMPI, pod 0's log is mpirun's, split by rank). One follow
 * per container run (a restarted container is followed again; a run that began and ended unseen between
 * two looks at the pod is read once from the API server's previous log first). A follow the API server refuses is tried
 * again a few times (the kubelet refuses a container that is still being created), except when refused
 * for lack of rights; one that never succeeds is noted once.
 * At the end each container's log is read once more from the last byte received, since a follow does not
 * say whether it delivered everything before it was stopped. When the pods are gone by then (the job master
 * in its pod deleted them), that read fails: the follows are first let run until they deliver nothing more,
 * as one stopped early loses what was still on its way.
 */
export class PodLogFollower {
  private readonly log: Pick<Log, 'log'>;
  private readonly files: WorkerLogFiles;
  private readonly follows = new Map<string, Follow>();
  /** pod/container → the key of its latest run's follow. */
  private readonly latest = new Map<string, string>();
  private refused = false;
  private closing = false;
  /** Reads of unseen previous runs, each followed by the start of the next run's follow. */
  private readonly previousReads = new Set<Promise<void>>();

  /** `once`: follow() only notes the containers, and close() reads each log once (`twister2 logs` without -f). */
  constructor(
    kc: KubeConfig,
    private readonly namespace: string,
    logsDir: string,
    private readonly note: (line: string) => void,
    private readonly once = false,
    /** The API server's log endpoint; a test may stand in for it. */
    log?: Pick<Log, 'log'>,
  ) {
    this.log = log ?? new Log(kc);
    this.files = new WorkerLogFiles(logsDir);
  }

  /** Starts following one run of a container (idempotent per pod uid, container and restart count). */
  follow(pod: { name: string; uid: string }, container: string, restartCount: number, target: LogTarget): void {
    const key = `${pod.uid}/${container}/${restartCount}`;
    if (this.follows.has(key) || this.closing) return;
    const f: Follow = { pod: pod.name, container, target, lines: [], received: 0 };
    this.follows.set(key, f);
    this.latest.set(`${pod.name}/${container}`, key);
    if (this.once) return;
    const before = `${pod.uid}/${container}/${restartCount - 1}`;
    if (restartCount === 0 || this.follows.has(before)) return void this.start(f, 1);
    // The run before this one was never seen: the API server keeps its log (previous=true), read first.
    const unseen: Follow = { pod: pod.name, container, target, lines: [], received: 0 };
    this.follows.set(before, unseen);
    const read = this.catchUp(unseen, true).then(() => this.start(f, 1));
    this.previousReads.add(read);
    void read.finally(() => this.previousReads.delete(read));
  }

  /**
   * Stops following and reads each log to its end. `drain`: the follows are first let deliver what is still
   * on its way: when the pods are gone a read after the follows cannot fetch anything, and while they still
   * run a worker's last line may reach its container log after the job master saw it complete.
   * `drainMaxMs` bounds that wait (for pods that still run, whose workers may keep writing).
   */
  async close(opts: { drain?: boolean; drainMaxMs?: number } = {}): Promise<void> {
    if (opts.drain) await this.untilQuiet(opts.drainMaxMs ?? DRAIN_MAX_MS);
    this.closing = true;
    for (const f of this.follows.values()) f.ctl?.abort();
    // Before reading on from the bytes each follow wrote: pieces it still holds would land after that read's, twice.
    await Promise.all([...this.follows.values()].map((f) => settled(f.stream)));
    await Promise.all(this.previousReads);
    await Promise.all([...this.latest.values()].map((key) => this.catchUp(this.follows.get(key)!)));
    for (const f of this.follows.values()) for (const l of f.lines) l.end();
    await this.files.close();
  }

  /** Waits until the follows still open delivered nothing for QUIET_TICKS ticks in a row (maxMs at most). */
  private async untilQuiet(maxMs: number): Promise<void> {
    const total = () => [...this.follows.values()].reduce((n, f) => n + f.received, 0);
    const open = () => [...this.follows.values()].some((f) => f.stream && !f.stream.writableEnded && !f.stream.destroyed);
    let last = total();
    let quiet = 0;
    for (let waited = 0; quiet < QUIET_TICKS && waited < maxMs && open(); waited += TICK_MS) {
      await new Promise((r) => setTimeout(r, TICK_MS));
      const now = total();
      quiet = now === last ? quiet + 1 : 0;
      last = now;
    }
  }

  private async start(f: Follow, attempt: number): Promise<void> {
    try {
      f.stream = this.sink(f);
      f.ctl = await this.log.log(this.namespace, f.pod, f.container, f.stream, { follow: true, pretty: false, timestamps: false });
      if (this.closing) f.ctl.abort();
    } catch (err) {
      const forbidden = err instanceof ApiException && (err.code === 401 || err.code === 403);
      if (!forbidden && attempt < FOLLOW_ATTEMPTS && !this.closing) {
        await new Promise((r) => setTimeout(r, FOLLOW_RETRY_MS * attempt));
        return this.start(f, attempt + 1);
      }
      if (this.refused || this.closing) return;
      this.refused = true;
      this.note(`cannot follow pod logs through the API server (${(err as Error).message}); workers' output stays in the pods`);
    }
  }

  /**
   * Reads the container's log (or its previous run's) once and writes what lies beyond the bytes the follow
   * delivered, passing it on as it comes (with backpressure) rather than holding the whole log.
   */
  private async catchUp(f: Follow, previous = false): Promise<void> {
    const sink = this.sink(f);
    let seen = 0;
    const beyond = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        const from = Math.max(0, f.received - seen);
        seen += chunk.length;
        if (from >= chunk.length) return done();
        sink.write(chunk.subarray(from), () => done());
      },
    });
    const finished = new Promise<void>((resolve) => beyond.once('finish', resolve));
    try {
      const ctl = await this.log.log(this.namespace, f.pod, f.container, beyond, { follow: false, pretty: false, timestamps: false, previous });
      await Promise.race([finished, new Promise((r) => setTimeout(r, 5000))]);
      ctl.abort();
    } catch {
      // The pod is gone, or its log with it: nothing more to read.
    }
  }

  /** A sink for one stream of the container's log, counting the bytes it got. */
  private sink(f: Follow): Writable {
    const target = f.target;
    const out: NodeJS.WritableStream = 'workerId' in target ? this.files.of(target.workerId) : 'driver' in target ? this.endedAtClose(f, target.driver.stream()) : this.linesInto(f, target.mpirun);
    return new Writable({
      write: (chunk: Buffer, _enc, done) => {
        f.received += chunk.length;
        if (out.write(chunk)) done();
        else out.once('drain', () => done());
      },
    });
  }

  private linesInto(f: Follow, splitter: TaggedOutputSplitter): PassThrough {
    const p = new PassThrough();
    f.lines.push(p);
    void splitter.follow(p);
    return p;
  }

  /** A stream of lines, ended at close so that it writes a last partial line. */
  private endedAtClose(f: Follow, w: Writable): Writable {
    f.lines.push(w);
    return w;
  }
}

/** Resolves once a stopped follow's stream has written what it holds (or was destroyed, dropping it). */
function settled(stream: Writable | undefined): Promise<void> {
  if (!stream || stream.destroyed || stream.writableFinished) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, SETTLE_MS);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    stream.once('finish', done).once('close', done).on('error', () => undefined); // late pieces of the aborted response
    if (!stream.writableEnded) stream.end();
  });
}

/**
 * Follows what a worker pod's containers print: each `worker-<i>` container that runs or already ended (a
 * short one can start and finish between two polls; a restarted one backs off with its run in lastState) as
 * worker `workerIdOf(i)`; with an mpirun splitter, only pod 0's `mpi` container, whose log is every rank's
 * output.
 */
export function followWorkerPod(
  logs: PodLogFollower,
  pod: { name: string; uid: string; ordinal: number; containers: V1ContainerStatus[] },
  workerIdOf: (containerIndex: number) => number,
  mpirun?: TaggedOutputSplitter,
): void {
  for (const c of pod.containers) {
    if (!c.state?.running && !c.state?.terminated && !(c.state?.waiting && c.lastState?.terminated)) continue;
    if (mpirun) {
      if (pod.ordinal === 0 && c.name === 'mpi') logs.follow(pod, c.name, c.restartCount, { mpirun });
      continue;
    }
    const index = workerContainerIndex(c.name);
    if (index !== undefined) logs.follow(pod, c.name, c.restartCount, { workerId: workerIdOf(index) });
  }
}

/** `worker-3` → 3; other containers (sshd, mpi) → undefined. */
export function workerContainerIndex(name: string): number | undefined {
  const m = /^worker-(\d+)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}
