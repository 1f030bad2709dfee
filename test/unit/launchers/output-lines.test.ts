import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { followLogs } from '../../../src/client/log-follower.js';
import { LineSplitter, MAX_LINE_CHARS } from '../../../src/line-splitter.js';
import { TaggedOutputSplitter } from '../../../src/launchers/mpi/tagged-output.js';

describe('worker output cut into lines', () => {
  it('keeps a character split between two chunks whole, and the last line without a newline', () => {
    const bytes = Buffer.from('grüße\nnext');
    const s = new LineSplitter();
    expect([...s.push(bytes.subarray(0, 3)), ...s.push(bytes.subarray(3))]).toEqual(['grüße']);
    expect(s.end()).toBe('next');
    expect(s.end()).toBeUndefined();
  });

  it('hands on a line longer than MAX_LINE_CHARS in pieces instead of holding it', () => {
    const s = new LineSplitter();
    const pieces = s.push('y'.repeat(MAX_LINE_CHARS * 2 + 5));
    expect(pieces.map((p) => p.length)).toEqual([MAX_LINE_CHARS, MAX_LINE_CHARS]);
    expect(s.end()).toBe('yyyyy');
  });

  it("mpirun's tagged output: a rank's character split between two chunks arrives whole in its log", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 't2-tagged-'));
    const splitter = new TaggedOutputSplitter(dir);
    const out = new PassThrough();
    const following = splitter.follow(out);
    const bytes = Buffer.from('[1,0]<stdout>:€uro\n[1,1]<stdout>:plain\n');
    out.write(bytes.subarray(0, 16)); // inside the three bytes of €
    out.end(bytes.subarray(16));
    await following;
    await splitter.close();
    expect(readFileSync(path.join(dir, 'worker-0.log'), 'utf8')).toBe('€uro\n');
    expect(readFileSync(path.join(dir, 'worker-1.log'), 'utf8')).toBe('plain\n');
  });

  it("mpirun's tagged output: a line a rank wrote in pieces (tagged each, another rank's between) arrives whole", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 't2-tagged-'));
    const splitter = new TaggedOutputSplitter(dir);
    const out = new PassThrough();
    const following = splitter.follow(out);
    out.end('[1,2]<stdout>:seq 2 5 xx[1,2]<stdout>:yy[1,3]<stdout>:three\n[1,2]<stdout>:zz\nmpirun: its own\n');
    await following;
    await splitter.close();
    expect(readFileSync(path.join(dir, 'worker-2.log'), 'utf8')).toBe('seq 2 5 xxyyzz\n');
    expect(readFileSync(path.join(dir, 'worker-3.log'), 'utf8')).toBe('three\n');
    expect(readFileSync(path.join(dir, 'mpirun.log'), 'utf8')).toBe('mpirun: its own\n');
  });

  it('followLogs reads a log larger than its chunks line by line, in order, each line once', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 't2-follow-'));
    const n = 30_000; // ≈ 1.3 MB: several chunks, lines across their boundaries
    writeFileSync(path.join(dir, 'worker-0.log'), Array.from({ length: n }, (_, i) => `line ${i} ääää`).join('\n'));
    writeFileSync(path.join(dir, 'worker-1.log'), 'one\ntwo\n');
    const got: string[] = [];
    for await (const l of followLogs(dir)) if (l.workerId === 0) got.push(l.line);
    expect(got.length).toBe(n);
    expect(got.every((line, i) => line === `line ${i} ääää`)).toBe(true);
  });
});
