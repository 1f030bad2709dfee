import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRawTarGz, writeZip } from '../helpers/archives.js';
import { jobIds, makeJob, runCli, tempHome } from '../helpers/cli.js';

const goodSpec = { name: 'bad', workers: 2, worker: { command: 'true' } };

/** Each case: the arguments after `twister2`, given a scratch directory; and what the message must say. */
const cases: [string, (dir: string) => Promise<string[]> | string[], RegExp][] = [
  ['workers of the wrong type', () => ['submit', makeJob({ ...goodSpec, workers: 'four' })], /workers: expected a whole number of workers.*\(got "four"\)/],
  ['zero workers', () => ['submit', makeJob({ ...goodSpec, workers: 0 })], /workers: expected at least 1 worker \(got 0\)/],
  ['negative workers', () => ['submit', makeJob({ ...goodSpec, workers: -2 })], /workers: .*\(got -2\)/],
  ['an unknown key', () => ['submit', makeJob({ ...goodSpec, wrkers: 3 })], /wrkers: unknown key "wrkers" \(did you mean "workers"\?\)/],
  ['no program', () => ['submit', makeJob({ ...goodSpec, worker: {} })], /worker: missing program: set worker.module/],
  ['a module not in the job', () => ['submit', makeJob({ ...goodSpec, worker: { module: 'nope.mjs' } })], /worker.module "nope.mjs" is not in the job/],
  ['a driver module not in the job', () => ['submit', makeJob({ ...goodSpec, driver: { module: 'driver.mjs' } })], /driver.module "driver.mjs" is not in the job/],
  ['a YAML syntax error', () => ['submit', makeJob('name: x\nworkers: [1\n')], /twister2.yaml.*\n.*YAML syntax/],
  ['no spec file', () => ['submit', makeJob(undefined, { 'w.sh': 'true' })], /no twister2.yaml \/ twister2.yml \/ twister2.json found/],
  ['--workers 0', () => ['submit', makeJob(goodSpec), '--workers', '0'], /^twister2: --workers 0 is out of range; give a whole number from 1 to 100000/],
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
  ['a YAML alias bomb', () => ['submit', makeJob(aliasBomb)], /twister2.yaml:\n.*too many YAML aliases/],
  ['a twister2.yaml that is a directory', () => {
    const dir = makeJob(undefined);
    mkdirSync(path.join(dir, 'twister2.yaml'));
    return ['submit', dir];
  }, /twister2.yaml is a directory, not a file; make twister2.yaml a readable file/],
  ['a jobMaster.host that does not resolve', () => ['submit', makeJob({ ...goodSpec, jobMaster: { host: 'no-such-host.invalid' } })], /jobMaster.host "no-such-host.invalid" does not resolve/],
  ['a jobMaster.port in use', () => ['submit', makeJob({ ...goodSpec, jobMaster: { port: busyPort } })], /jobMaster.port \d+ is already in use on 127.0.0.1; choose another port, or 0/],
  ['a jobMaster.port in use, detached', () => ['submit', '--detach', makeJob({ ...goodSpec, jobMaster: { port: busyPort } })], /jobMaster.port \d+ is already in use on 127.0.0.1/],
  ['--workers in hex', () => ['submit', makeJob(goodSpec), '--workers', '0x10'], /^twister2: --workers "0x10" is not a whole number in decimal digits/],
  ['--workers without a value', () => ['submit', makeJob(goodSpec), '--workers'], /Not enough arguments following: workers/],
  ['--workers abc', () => ['submit', makeJob(goodSpec), '--workers', 'abc'], /^twister2: --workers "abc" is not a whole number(?![\s\S]*twister2.yaml)/],
  ['--workers 1.5', () => ['submit', makeJob(goodSpec), '--workers', '1.5'], /--workers "1.5" is not a whole number/],
  ['--workers too many', () => ['submit', makeJob(goodSpec), '--workers', '100001'], /--workers 100001 is out of range; give a whole number from 1 to 100000/],
  ['workers: 1e9 in the file', () => ['submit', makeJob({ ...goodSpec, workers: 1e9 })], /workers: expected at most 100000 workers \(got 1000000000\)/],
  ['scale to 1e9', () => ['scale', 'some-job', '1e9'], /the number of workers "1e9" is not a whole number/],
  ['scale to 0', () => ['scale', 'some-job', '0'], /the number of workers 0 is out of range/],
  ['barrier --timeout too long', () => ['barrier', 'b', '--timeout', '9999999h'], /--timeout "9999999h" is too long/],
  ['barrier --timeout without a value', () => ['barrier', 'b', '--timeout'], /Not enough arguments following: timeout/],
  ['package-server --port in hex', () => ['package-server', '--dir', makeJob(undefined), '--port', '0x10'], /--port "0x10" is not a whole number/],
  ['package-server --port too large', () => ['package-server', '--dir', makeJob(undefined), '--port', '70000'], /--port 70000 is out of range; give a whole number from 0 to 65535/],
  ['package-server --max-size not a size', () => ['package-server', '--dir', makeJob(undefined), '--max-size', 'lots'], /--max-size "lots" is not a size/],
];

/** 10^7 expansions from a few hundred bytes. */
const aliasBomb = [
  'name: bomb',
  'workers: 1',
  'worker: { command: "true" }',
  'a0: &a0 [x, x, x, x, x, x, x, x, x, x]',
  ...[1, 2, 3, 4, 5, 6].map((i) => `a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`),
].join('\n');

let busy: Server;
let busyPort = 0;
beforeAll(async () => {
  busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  busyPort = (busy.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => busy.close(() => resolve())));

/** One paragraph: the `twister2:` message (it may list problems on indented lines), no blank line, no stack. */
function expectOneParagraph(stderr: string): void {
  expect(stderr).toMatch(/^twister2: /);
  expect(stderr.trim()).not.toMatch(/\n\s*\n/);
  expect(stderr).not.toMatch(/^\s+at /m); // no stack trace
  expect(stderr).not.toMatch(/internal error/);
}

/** `twister2 list` shows no job, and the jobs directory holds none. */
async function expectNothingLeft(home: string): Promise<void> {
  expect(jobIds(home)).toEqual([]);
  const list = await runCli(['list'], home);
  expect(list.code).toBe(0);
  expect(list.stdout.trim().split('\n')).toHaveLength(1); // the header only
}

describe('bad input: a clear error, exit code 2, and nothing created', () => {
  it.each(cases)('%s', async (_name, args, message) => {
    const home = tempHome();
    const scratch = makeJob(undefined);
    const r = await runCli(await args(scratch), home, { TWISTER2_PACKAGE_SERVER_TOKEN: 'a-token-of-enough-length' });
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
    expectOneParagraph(r.stderr);
    await expectNothingLeft(home);
  });
});

describe('a job directory without a usable job.json', () => {
  const broken: [string, (dir: string) => void, RegExp][] = [
    ['no job.json', () => {}, /has no readable job.json \(the job's record: missing\)/],
    ['a job.json that is not JSON', (dir) => writeFileSync(path.join(dir, 'job.json'), '{"jobId": '), /job.json \(the job's record\) is not valid JSON/],
    ['a job.json of the wrong shape', (dir) => writeFileSync(path.join(dir, 'job.json'), '{"jobId": 5}'), /job.json \(the job's record\) is corrupt: jobId: /],
  ];
  it.each(broken)('%s: status, logs and kill exit 2 naming the file and the fix; list skips it and says why', async (_name, damage, message) => {
    const home = tempHome();
    const dir = path.join(home, 'jobs', 'broken-20260101000000-abcd');
    mkdirSync(path.join(dir, 'logs'), { recursive: true });
    damage(dir);
    for (const command of ['status', 'logs', 'kill']) {
      const r = await runCli([command, 'broken'], home);
      expect(r.stderr, command).toMatch(message);
      expect(r.stderr, command).toContain(`rm -rf ${dir}`);
      expect(r.code, command).toBe(2);
      expectOneParagraph(r.stderr);
    }
    const list = await runCli(['list'], home);
    expect(list.code).toBe(0);
    expect(list.stderr).toMatch(/skipping broken-20260101000000-abcd: .*job.json/);
    expect(list.stdout.trim().split('\n')).toHaveLength(1);
  });
});
