import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { FileTail } from './file-tail.js';
import { killGroup } from './process-group.js';

/** Where a detached command's output goes (stdout: nowhere unless given) and where its exit status is written. */
export interface CommandFiles {
  stdout?: string;
  stderr: string;
  exit: string;
}

export type OutputStream = 'stdout' | 'stderr';

export interface CommandEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface CommandFollower {
  onLine(line: string, stream: OutputStream): void;
  /** The offset in a stream's file up to which lines were handed on: `from` for a job master that attaches after a restart. */
  onProgress?(stream: OutputStream, offset: number): void;
  onExit(end: CommandEnd): void;
  from?: Partial<Record<OutputStream, number>>;
  /** Awaited before more output is read (see FileTail). */
  afterChunk?(): Promise<void> | undefined;
}

const POLL_MS = 500;
const SIGNAL_NAMES = new Map(Object.entries(os.constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));
/**
 * Runs "$@" with stdout appended to $1 (/dev/null when empty) and stderr to $2, and writes its exit status
 * to $3 (renamed into place, so never half written).
 */
const WRAPPER = 'out=${1:-/dev/null} err=$2 exit=$3; shift 3; "$@" >>"$out" 2>>"$err"; s=$?; echo "$s" >"$exit.tmp" && mv "$exit.tmp" "$exit"; exit "$s"';

/**
 * A command (srun, say) run in its own process group, with its stderr appended to a file and its exit
 * status written to another by a small sh wrapper. Neither needs the job master that started it: a pipe
 * would break when the job master is killed and take the command down with it. A job master restarted
 * after a crash attaches to the same command by its process group and files, and learns its output and its
 * end all the same, though it is not its parent.
 */
export class DetachedCommand {
  private readonly tails: FileTail[];
  private readonly poller: NodeJS.Timeout;
  private ending: Promise<void> | undefined;

  private constructor(
    readonly pgid: number,
    readonly files: CommandFiles,
    private readonly follower: CommandFollower,
  ) {
    const streams = (['stdout', 'stderr'] as const).filter((s) => files[s] !== undefined);
    this.tails = streams.map((stream) => {
      const from = follower.from?.[stream];
      const onProgress = follower.onProgress;
      const afterChunk = follower.afterChunk;
      const tail = new FileTail(files[stream]!, (line) => follower.onLine(line, stream), {
        pollMs: POLL_MS,
        ...(afterChunk ? { afterChunk: () => afterChunk.call(follower) } : {}),
        ...(from !== undefined ? { from } : {}),
        ...(onProgress ? { onProgress: (offset: number) => onProgress(stream, offset) } : {}),
      });
      tail.start();
      return tail;
    });
    this.poller = setInterval(() => this.check(), POLL_MS);
  }

  static start(program: string, args: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string; files: CommandFiles } & CommandFollower): DetachedCommand {
    const { stdout = '', stderr, exit } = opts.files;
    const child = spawn('/bin/sh', ['-c', WRAPPER, 'twister2-detached', stdout, stderr, exit, program, ...args], {
      env: opts.env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      stdio: 'ignore',
      detached: true,
    });
    const command = new DetachedCommand(child.pid ?? 0, opts.files, opts);
    // Its parent learns the end at once; the status file says how (a signal kills the wrapper before it writes).
    child.once('exit', (code, signal) => command.check({ code: signal ? null : code, signal }));
    child.once('error', (err) => {
      opts.onLine(`could not run ${program}: ${err.message}`, 'stderr');
      command.check({ code: 127, signal: null });
    });
    return command;
  }

  /** Takes over a command an earlier job master started (`pgid` and `files` are what it remembered). */
  static attach(pgid: number, files: CommandFiles, follower: CommandFollower): DetachedCommand {
    const command = new DetachedCommand(pgid, files, follower);
    command.check();
    return command;
  }

  /**
   * The process group of a command started with these files that nobody remembered (its starter crashed
   * before it could record it): its wrapper, found by its command line. Undefined if none runs here.
   */
  static find(files: CommandFiles): number | undefined {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
        if (argv[3] === 'twister2-detached' && argv[6] === files.exit) return Number(entry);
      } catch {
        // Gone, or not ours to read.
      }
    }
    return undefined;
  }

  /** Whether a command with these files ended (its status is written). */
  static ended(files: CommandFiles): boolean {
    return existsSync(files.exit);
  }

  get running(): boolean {
    return this.ending === undefined;
  }

  /** SIGTERM to the group (srun passes it on to its tasks), SIGKILL after `graceMs`; resolves once the group is gone. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.running) return this.ending;
    killGroup(this.pgid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (groupAlive(this.pgid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    killGroup(this.pgid, 'SIGKILL');
    while (groupAlive(this.pgid) && Date.now() < deadline + 5000) await new Promise((r) => setTimeout(r, 100));
    this.check();
    return this.ending;
  }

  /** For an exiting job master: nothing of the command may outlive it. */
  kill(): void {
    killGroup(this.pgid, 'SIGKILL');
  }

  /** Ended when the status file is there, or when the group is gone without one (killed with its wrapper). */
  private check(fromParent?: CommandEnd): void {
    if (!this.running) return;
    const written = statusOf(this.files.exit);
    if (!written && !fromParent && groupAlive(this.pgid)) return;
    clearInterval(this.poller);
    const end = written ?? fromParent ?? { code: null, signal: null };
    this.ending = Promise.all(this.tails.map((t) => t.stop())).then(() => this.follower.onExit(end));
  }
}

function statusOf(file: string): CommandEnd | undefined {
  if (!existsSync(file)) return undefined;
  const s = Number(readFileSync(file, 'utf8').trim());
  // The shell's way of saying that the command was killed by signal N.
  if (s > 128 && SIGNAL_NAMES.has(s - 128)) return { code: null, signal: SIGNAL_NAMES.get(s - 128)! };
  return { code: s, signal: null };
}

function groupAlive(pgid: number): boolean {
  if (!pgid) return false;
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}
