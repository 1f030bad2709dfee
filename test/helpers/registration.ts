import type { RegisterRequest } from '../../src/protocol/messages.js';

/** What a worker with this ID sends to register, for job master tests that stand in for workers. */
export const registration = (workerId: number): RegisterRequest => ({
  workerId,
  host: 'h',
  ip: '127.0.0.1',
  ports: {},
  node: 'n',
  resources: { cpu: 1, memoryBytes: 1, gpus: 0 },
  restartCount: 0,
});
