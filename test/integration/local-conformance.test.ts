import { launcherConformance } from '../conformance/launcher-conformance.js';
import { jobProcesses } from '../helpers/cli.js';

launcherConformance({
  cluster: 'local',
  leftovers: async (jobId) => jobProcesses(jobId).map((pid) => `process ${pid}`),
  cleanupWithinMs: 3000,
});
