import { describe, expect, it } from 'vitest';
import { inWorkerCall } from '../../../src/cli/in-worker-argv.js';

describe('the in-worker commands\' short path', () => {
  it.each([
    [['barrier', 'b1'], { cmd: 'barrier', name: 'b1' }],
    [['barrier', 'b1', '--timeout', '30s'], { cmd: 'barrier', name: 'b1', timeout: '30s' }],
    [['barrier', '--timeout=2m', 'b1'], { cmd: 'barrier', name: 'b1', timeout: '2m' }],
    [['workers'], { cmd: 'workers', json: false, wait: false }],
    [['workers', '--wait', '--json'], { cmd: 'workers', json: true, wait: true }],
    [['ports', 'publish', 'data=5000', 'ctrl=5001'], { cmd: 'ports', ports: ['data=5000', 'ctrl=5001'] }],
    [['message', 'send', '{"a": 1}'], { cmd: 'message-send', json: '{"a": 1}' }],
    [['message', 'send', '-5'], { cmd: 'message-send', json: '-5' }],
    [['message', 'send', '-'], { cmd: 'message-send', json: '-' }],
    [['message', 'recv'], { cmd: 'message-recv' }],
    [['message', 'recv', '--timeout', '5s'], { cmd: 'message-recv', timeout: '5s' }],
  ])('takes %j', (argv, call) => {
    expect(inWorkerCall(argv)).toEqual(call);
  });

  // The full CLI explains these (or runs them outside a worker): the short path must not guess.
  it.each([
    [[]],
    [['barrier']],
    [['barrier', 'a', 'b']],
    [['barrier', 'b1', '--timeout']],
    [['barrier', 'b1', '--timeout', '1s', '--timeout', '2s']],
    [['barrier', 'b1', '--help']],
    [['barrier', '--timeout', '-1s', 'b1']],
    [['workers', 'job-123']],
    [['workers', '--json', '--json']],
    [['workers', '--no-json']],
    [['ports', 'publish']],
    [['ports', 'publish', '--help']],
    [['ports']],
    [['message']],
    [['message', 'send']],
    [['message', 'send', '1', '2']],
    [['message', 'send', '--help']],
    [['message', 'recv', 'x']],
    [['message', 'recv', '--help']],
    [['submit', 'job']],
    [['--version']],
  ])('leaves %j to the full CLI', (argv) => {
    expect(inWorkerCall(argv)).toBeUndefined();
  });
});
