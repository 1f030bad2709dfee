import { ENV } from '../../job/worker-environment.js';
import { createReadStream, existsSync } from 'node:fs';
import { Writable } from 'node:stream';
import { ApiException, CoreV1Api, Exec, type KubeConfig, type V1Status } from '@kubernetes/client-node';

const ATTEMPTS = 5;
const RETRY_MS = 1000;
const EXEC_TIMEOUT_MS = 10 * 60_000;

/**
 * The name the package gets in each pod's work dir (the shared memory volume), where the workers wait for it.
 * Written as `<name>.part` and renamed when complete, so a worker never reads half a copy.
 */
export const COPIED_PACKAGE = 'package.copied.tar.gz';

/**
 * `sh -c` script run in the pod: reads exactly `$1` bytes from stdin into the work dir, checks the length,
 * renames into place. Reading a byte count rather than to end of input keeps it independent of how the
 * runtime signals the end of stdin; the worker verifies the sha256 when it unpacks.
 */
const SCRIPT = `set -e; cd "$${ENV.workDir}"; head -c "$1" > "$2.part"; test "$(wc -c < "$2.part")" -eq "$1"; mv "$2.part" "$2"`;

/**
 * Copies the job package into every worker pod through the exec API (what `kubectl cp` does), once per pod
 * (by uid, so a recreated pod gets a new copy), as soon as a container of the pod runs. A failed copy is
 * tried again; when every attempt failed, `failed` gets the reason and the job ends.
 */
export class PodPackageCopier {
  private readonly exec: Exec;
  private readonly core: CoreV1Api;
  private readonly started = new Set<string>();
  private stopped = false;

  constructor(
    kc: KubeConfig,
    private readonly namespace: string,
    private readonly pkg: { file: string; size: number },
    private readonly note: (line: string) => void,
    private readonly failed: (message: string) => void,
    /** A restarted job master: pods (uids) its predecessor copied the package into, and where to tell each new copy. */
    private readonly done: { before?: Iterable<string>; copied?: (uid: string) => void } = {},
  ) {
    this.exec = new Exec(kc);
    this.core = kc.makeApiClient(CoreV1Api);
    for (const uid of done.before ?? []) this.started.add(uid);
  }

  /** Starts the copy into the pod unless it was started for this pod (uid) before. */
  copyInto(pod: { name: string; uid: string }, container: string): void {
    if (this.started.has(pod.uid) || this.stopped) return;
    this.started.add(pod.uid);
    void this.attempt(pod.name, pod.uid, container, 1);
  }

  stop(): void {
    this.stopped = true;
  }

  private async attempt(pod: string, uid: string, container: string, n: number): Promise<void> {
    // The client copied the package into the job master's pod: a new pod (the old one deleted) has none.
    if (!existsSync(this.pkg.file)) {
      this.failed(
        `the job package is no longer in the job master's pod (it was replaced, and the package copied into it went with it), so pod ${this.namespace}/${pod} cannot get it; with uploader.kind http, s3 or shared the package outlives the job master's pod`,
      );
      return;
    }
    const t0 = Date.now();
    try {
      await this.copyOnce(pod, container);
      this.note(`copied the package (${this.pkg.size} bytes) into pod ${pod} in ${Date.now() - t0} ms`);
      this.done.copied?.(uid);
    } catch (err) {
      if (this.stopped) return;
      const why = (err as Error).message;
      // A pod deleted meanwhile (scaled down, replaced) needs no copy: its replacement gets its own.
      if (await this.gone(pod, uid)) {
        this.note(`pod ${pod} went away before the package was copied into it (${why})`);
        return;
      }
      if (n >= ATTEMPTS) {
        this.failed(`could not copy the job package into pod ${this.namespace}/${pod} through the exec API after ${n} attempts: ${why}`);
        return;
      }
      this.note(`copying the package into pod ${pod} failed (attempt ${n}: ${why}); trying again`);
      await new Promise((r) => setTimeout(r, RETRY_MS * n));
      if (!this.stopped) return this.attempt(pod, uid, container, n + 1);
    }
  }

  private async gone(pod: string, uid: string): Promise<boolean> {
    try {
      return (await this.core.readNamespacedPod({ namespace: this.namespace, name: pod })).metadata?.uid !== uid;
    } catch (err) {
      return err instanceof ApiException && err.code === 404;
    }
  }

  private async copyOnce(pod: string, container: string): Promise<void> {
    let stderr = '';
    const errSink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        if (stderr.length < 4000) stderr += chunk.toString('utf8');
        done();
      },
    });
    const input = createReadStream(this.pkg.file);
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        input.destroy();
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => settle(new Error(`no answer within ${EXEC_TIMEOUT_MS / 1000}s`)), EXEC_TIMEOUT_MS);
      const command = ['sh', '-c', SCRIPT, 'sh', String(this.pkg.size), COPIED_PACKAGE];
      const onStatus = (s: V1Status) => {
        if (s.status === 'Success') settle();
        else settle(new Error([s.message ?? s.reason ?? 'the command failed', stderr.trim()].filter(Boolean).join(': ')));
      };
      this.exec
        .exec(this.namespace, pod, container, command, null, errSink, input, false, onStatus)
        .then((ws) => {
          ws.on('close', () => settle(new Error(`the exec stream closed without a status${stderr ? `: ${stderr.trim()}` : ''}`)));
          ws.on('error', (e: Error) => settle(e));
        })
        .catch((e: Error) => settle(e));
    });
  }
}
