import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { AllocationLogs, type LogProgress } from '../../src/launchers/nomad/allocation-logs.js';
import type { NomadApi } from '../../src/launchers/nomad/nomad-api.js';

/** A Nomad logs API whose followed streams the test feeds by hand; the final read returns `rest[type]`. */
function fakeApi(rest: Partial<Record<'stdout' | 'stderr', string>> = {}) {
  const live: Record<string, PassThrough> = {};
  const api = {
    logStream(_alloc: string, _task: string, type: 'stdout' | 'stderr', _offset = 0, follow = true): Readable {
      if (!follow) return Readable.from(rest[type] ? [Buffer.from(rest[type])] : []);
      return (live[type] = new PassThrough());
    },
  } as unknown as NomadApi;
  return { api, live };
}

/** A Nomad logs API over fixed allocation logs (`all[type]`), read from the offset asked for, followed or not. */
function offsetApi(all: Record<'stdout' | 'stderr', string>) {
  return {
    logStream(_alloc: string, _task: string, type: 'stdout' | 'stderr', offset = 0): Readable {
      return Readable.from([Buffer.from(all[type]).subarray(offset)]);
    },
  } as unknown as NomadApi;
}

describe('AllocationLogs', () => {
  it('writes every line once after a restart, whichever progress the predecessor kept', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'alloc-logs-'));
    const all = { stdout: 'a\nstart\nb\n', stderr: 'note\n' };
    // The predecessor: stdout's "a", then "start", then stderr's note reach the file, but the progress
    // after "start" was not kept (it crashed before its journal had it); the one after the note was.
    const { api, live } = fakeApi();
    const kept = new Map<string, LogProgress>();
    let n = 0;
    const first = new AllocationLogs(api, 'worker', dir, { progress: (id, p) => n++ !== 1 && kept.set(id, p) });
    first.follow('alloc-1', 2);
    for (const [type, text] of [['stdout', 'a\n'], ['stdout', 'start\n'], ['stderr', 'note\n']] as const) {
      live[type]!.write(text);
      await new Promise((r) => setTimeout(r, 20));
    }
    // Its successor reads on from there; at the end it reads the rest (stdout's "b").
    const second = new AllocationLogs(offsetApi(all), 'worker', dir, { from: kept });
    second.include('alloc-1', 2);
    await second.finish();
    expect(readFileSync(path.join(dir, 'worker-2.log'), 'utf8').split('\n').filter(Boolean).sort()).toEqual(['a', 'b', 'note', 'start']);
  });

  it('keeps stdout lines whole when stderr output arrives while a stdout chunk ends inside a line', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'alloc-logs-'));
    const { api, live } = fakeApi({ stdout: 'seq 1 1503 xxx\n' });
    const logs = new AllocationLogs(api, 'worker', dir);
    logs.follow('alloc-1', 1);
    // Nomad's frames cut the output anywhere: here inside line 1502's header.
    live.stdout!.write('seq 1 1501 xxx\nseq 1 15');
    await tick();
    live.stderr!.write('[twister2 worker 1] a note from the runtime\n');
    await tick();
    live.stdout!.write('02 xxx\n');
    await tick();
    await logs.finish();
    const lines = readFileSync(path.join(dir, 'worker-1.log'), 'utf8').split('\n');
    expect(lines.filter((l) => l.startsWith('seq'))).toEqual(['seq 1 1501 xxx', 'seq 1 1502 xxx', 'seq 1 1503 xxx']);
    expect(lines).toContain('[twister2 worker 1] a note from the runtime');
  });

  it('ends a last line without a newline, so it does not run into the other stream', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'alloc-logs-'));
    const { api, live } = fakeApi();
    const logs = new AllocationLogs(api, 'worker', dir);
    logs.follow('alloc-1', 0);
    live.stdout!.write('done');
    await tick();
    await logs.finish();
    expect(readFileSync(path.join(dir, 'worker-0.log'), 'utf8')).toBe('done\n');
  });
});
