import { describe, expect, it } from 'vitest';
import { plainSubmitCall } from '../../../src/cli/submit-argv.js';

const plain = { cluster: undefined, workers: undefined, detach: false, dashboard: undefined, json: false };

describe("submit's short path", () => {
  it.each([
    [['submit', 'job'], { ...plain, job: 'job' }],
    [['submit', '--cluster', 'mpi', 'job.zip'], { ...plain, job: 'job.zip', cluster: 'mpi' }],
    [['submit', 'job', '--workers=4', '--detach', '--json'], { ...plain, job: 'job', workers: '4', detach: true, json: true }],
    [['submit', '--dashboard', 'http://127.0.0.1:8642', 'job', '--cluster=local'], { ...plain, job: 'job', cluster: 'local', dashboard: 'http://127.0.0.1:8642' }],
    // The value is checked where yargs' path checks it too (workersFlag), with the same message.
    [['submit', 'job', '--workers', 'abc'], { ...plain, job: 'job', workers: 'abc' }],
  ])('takes %j', (argv, call) => {
    expect(plainSubmitCall(argv)).toEqual(call);
  });

  // The full CLI explains these: the short path must not guess.
  it.each([
    [['submit']],
    [['submit', 'a', 'b']],
    [['submit', 'job', '--help']],
    [['submit', '--version']],
    [['submit', 'job', '--cluster', 'moon']],
    [['submit', 'job', '--cluster']],
    [['submit', 'job', '--workers', '-3']],
    [['submit', 'job', '--workers=']],
    [['submit', 'job', '--workers', '2', '--workers', '3']],
    [['submit', 'job', '--detach', '--detach']],
    [['submit', 'job', '--detach=false']],
    [['submit', 'job', '--no-detach']],
    [['submit', 'job', '-w', '2']],
    [['submit', 'job', '--wrokers', '2']],
    [['status', 'job']],
    [['barrier', 'b1']],
  ])('leaves %j to the full CLI', (argv) => {
    expect(plainSubmitCall(argv)).toBeUndefined();
  });
});
