import { createWriteStream, type WriteStream } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Log, type KubeConfig } from '@kubernetes/client-node';

/**
 * Follows the worker containers' logs through the API server into the job's `logs/worker-N.log`, which
 * the client streams tagged by worker ID. One follow per container run (a restarted container is followed
 * again); a follow the API server refuses (no kubelet to ask, RBAC) is noted once and not retried.
 */
export class PodLogFollower {
  private readonly log: Log;
  private readonly files = new Map<number, WriteStream>();
  private readonly follows = new Map<string, AbortController | undefined>();
  private refused = false;

  constructor(
    kc: KubeConfig,
    private readonly namespace: string,
    private readonly logsDir: string,
    private readonly note: (line: string) => void,
  ) {
    this.log = new Log(kc);
  }

  /** Starts following one run of a container (idempotent per pod uid, container and restart count). */
  follow(pod: { name: string; uid: string }, container: string, restartCount: number, workerId: number): void {
    const key = `${pod.uid}/${container}/${restartCount}`;
    if (this.follows.has(key)) return;
    this.follows.set(key, undefined);
    const file = this.fileOf(workerId);
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => (file.write(chunk) ? done() : file.once('drain', () => done())),
    });
    this.log
      .log(this.namespace, pod.name, container, sink, { follow: true, pretty: false, timestamps: false })
      .then((ctl) => this.follows.set(key, ctl))
      .catch((err: Error) => {
        if (this.refused) return;
        this.refused = true;
        this.note(`cannot follow pod logs through the API server (${err.message}); workers' output stays in the pods`);
      });
  }

  async close(): Promise<void> {
    for (const ctl of this.follows.values()) ctl?.abort();
    await Promise.all([...this.files.values()].map((f) => new Promise((r) => f.end(r))));
  }

  private fileOf(workerId: number): WriteStream {
    let f = this.files.get(workerId);
    if (!f) {
      f = createWriteStream(path.join(this.logsDir, `worker-${workerId}.log`), { flags: 'a' });
      this.files.set(workerId, f);
    }
    return f;
  }
}
