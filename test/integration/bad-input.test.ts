import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeRawTarGz, writeZip } from '../helpers/archives.js';
import { jobIds, makeJob, runCli, tempHome } from '../helpers/cli.js';

const goodSpec = { name: 'bad', workers: 2, worker: { command: 'true' } };

/** Each case: the arguments after `twister2`, given a scratch directory; and what the message must say. */
const cases: [string, (dir: string) => Promise<string[]> | string[], RegExp][] = [
  ['workers of the wrong type', () => ['submit', makeJob({ ...goodSpec, workers: 'four' })], /workers: expected a whole number of workers.*\(got "four"\)/],
  ['zero workers', () => ['submit', makeJob({ ...goodSpec, workers: 0 })], /workers: .*at least 1 \(got 0\)/],
  ['negative workers', () => ['submit', makeJob({ ...goodSpec, workers: -2 })], /workers: .*\(got -2\)/],
  ['an unknown key', () => ['submit', makeJob({ ...goodSpec, wrkers: 3 })], /wrkers: unknown key "wrkers" \(did you mean "workers"\?\)/],
  ['no program', () => ['submit', makeJob({ ...goodSpec, worker: {} })], /worker: missing program: set worker.module/],
  ['a module not in the job', () => ['submit', makeJob({ ...goodSpec, worker: { module: 'nope.mjs' } })], /worker.module "nope.mjs" is not in the job/],
  ['a YAML syntax error', () => ['submit', makeJob('name: x\nworkers: [1\n')], /twister2.yaml.*\n.*YAML syntax/],
  ['no spec file', () => ['submit', makeJob(undefined, { 'w.sh': 'true' })], /no twister2.yaml \/ twister2.yml \/ twister2.json found/],
  ['--workers 0', () => ['submit', makeJob(goodSpec), '--workers', '0'], /workers: .*\(got 0\)/],
  ['a cluster twister2 does not know', () => ['submit', makeJob(goodSpec), '--cluster', 'yarn'], /Argument: cluster, Given: "yarn", Choices: "local", "kubernetes", "slurm", "nomad", "mpi"/],
  ['a job path that does not exist', (d) => ['submit', path.join(d, 'missing')], /does not exist; give a directory, a .zip or a .tar.gz/],
  ['a file that is not an archive', (d) => {
    writeFileSync(path.join(d, 'job.txt'), 'hello');
    return ['submit', path.join(d, 'job.txt')];
  }, /neither a directory nor a .zip \/ .tar.gz/],
  ['a .tar.gz with ../ traversal', async (d) => [
    'submit',
    await writeRawTarGz(path.join(d, 'evil.tar.gz'), [{ name: 'twister2.yaml', data: JSON.stringify(goodSpec) }, { name: '../evil.sh', data: 'rm -rf /' }]),
  ], /\.\.\/evil\.sh/],
  ['a .tar.gz with a symlink out of the job', async (d) => [
    'submit',
    await writeRawTarGz(path.join(d, 'link.tar.gz'), [{ name: 'twister2.yaml', data: JSON.stringify(goodSpec) }, { name: 'passwd', type: '2', linkname: '/etc/passwd' }]),
  ], /passwd/],
  ['a .zip with an absolute path', async (d) => [
    'submit',
    await writeZip(path.join(d, 'abs.zip'), [{ name: 'twister2.yaml', data: JSON.stringify(goodSpec) }, { name: 'XXXXtmpXevil', data: 'x' }], { XXXXtmpXevil: '/tmp/t2evil1' }),
  ], /t2evil|absolute/],
  ['an empty .zip', async (d) => ['submit', await writeZip(path.join(d, 'empty.zip'), [])], /empty/],
  ['an empty .tar.gz', async (d) => ['submit', await writeRawTarGz(path.join(d, 'empty.tar.gz'), [])], /empty/],
  ['an unknown command', () => ['sumbit', 'x'], /Unknown argument|Did you mean submit/],
];

describe('bad input: a clear error, exit code 2, and nothing created', () => {
  it.each(cases)('%s', async (_name, args, message) => {
    const home = tempHome();
    const scratch = makeJob(undefined);
    const r = await runCli(await args(scratch), home);
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
    expect(jobIds(home)).toEqual([]);
  });
});
