import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DetachedCommand, type CommandEnd } from '../../../src/launchers/detached-command.js';

function files() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'detached-'));
  return { stderr: path.join(dir, 'step.stderr'), exit: path.join(dir, 'step.exit') };
}

/** Follows a command to its end: its stderr lines, the last offset reported, and how it ended. */
function follower(from?: number) {
  const lines: string[] = [];
  let offset = -1;
  let resolve!: (e: CommandEnd) => void;
  const ended = new Promise<CommandEnd>((r) => (resolve = r));
  return {
    lines,
    offset: () => offset,
    ended,
    onLine: (l: string, stream: string) => lines.push(stream === 'stderr' ? l : `${stream}: ${l}`),
    onProgress: (stream: string, o: number) => stream === 'stderr' && (offset = o),
    onExit: resolve,
    ...(from !== undefined ? { from: { stderr: from } } : {}),
  };
}

describe('DetachedCommand', () => {
  it('hands on stderr lines with the offset past them, and the exit code from the status file', async () => {
    const f = files();
    const w = follower();
    DetachedCommand.start('sh', ['-c', 'echo one >&2; echo two >&2; exit 3'], { env: process.env, files: f, ...w });
    expect(await w.ended).toEqual({ code: 3, signal: null });
    expect(w.lines).toEqual(['one', 'two']);
    expect(w.offset()).toBe(8);
    expect(readFileSync(f.exit, 'utf8').trim()).toBe('3');
  });

  it('with a stdout file, hands on its lines too, in the working directory given', async () => {
    const base = files();
    const f = { ...base, stdout: path.join(path.dirname(base.exit), 'step.stdout') };
    const w = follower();
    DetachedCommand.start('sh', ['-c', 'pwd; echo err >&2'], { env: process.env, cwd: '/usr', files: f, ...w });
    expect(await w.ended).toEqual({ code: 0, signal: null });
    expect(w.lines.sort()).toEqual(['err', 'stdout: /usr']);
  });

  it('runs in its own process group, which outlives its starter; another process attaches by group and files and reads on from an offset', async () => {
    const f = files();
    const first = follower();
    const started = DetachedCommand.start('sh', ['-c', 'echo before >&2; sleep 1; echo after >&2; exit 2'], { env: process.env, files: f, ...first });
    expect(started.pgid).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 600));
    expect(first.offset()).toBe(7);
    // The attached one is not the command's parent: it sees the end through the status file only.
    const second = follower(first.offset());
    DetachedCommand.attach(started.pgid, f, second);
    expect(await second.ended).toEqual({ code: 2, signal: null });
    expect(second.lines).toEqual(['after']);
  });

  it('a command killed by a signal ends with that signal; a group killed with its wrapper ends with no code', async () => {
    const f = files();
    const w = follower();
    // The shell says 128 + N for a command killed by signal N.
    DetachedCommand.start('sh', ['-c', 'kill -TERM $$'], { env: process.env, files: f, ...w });
    expect(await w.ended).toEqual({ code: null, signal: 'SIGTERM' });

    const g = files();
    const started = DetachedCommand.start('sleep', ['30'], { env: process.env, files: g, ...follower() });
    const attached = follower();
    DetachedCommand.attach(started.pgid, g, attached);
    process.kill(-started.pgid, 'SIGKILL');
    expect(await attached.ended).toEqual({ code: null, signal: null });
  });

  it('stop() ends the whole group (SIGTERM, then SIGKILL after the grace time) and resolves once it is gone', async () => {
    const f = files();
    const w = follower();
    const c = DetachedCommand.start('sh', ['-c', 'trap "" TERM; sleep 30 & wait'], { env: process.env, files: f, ...w });
    await new Promise((r) => setTimeout(r, 200));
    await c.stop(300);
    expect(c.running).toBe(false);
    expect(() => process.kill(-c.pgid, 0)).toThrow();
  });

  it('find() names the process group of a command by its files (a starter that crashed before recording it); ended() tells one that finished', async () => {
    const f = files();
    expect(DetachedCommand.find(f)).toBeUndefined();
    const w = follower();
    const c = DetachedCommand.start('sleep', ['0.5'], { env: process.env, files: f, ...w });
    expect(DetachedCommand.find(f)).toBe(c.pgid);
    expect(DetachedCommand.find(files())).toBeUndefined();
    expect(DetachedCommand.ended(f)).toBe(false);
    await w.ended;
    expect(DetachedCommand.find(f)).toBeUndefined();
    expect(DetachedCommand.ended(f)).toBe(true);
  });
});
