import type { Launcher } from '../../src/launchers/launcher.js';
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

/** A launcher that starts nothing: the job master alone, with tests standing in for its workers. */
export const noopLauncher = (): Launcher => ({ start: async () => {}, addWorkers: async () => {}, removeWorkers: async () => {}, release: async () => {} });
