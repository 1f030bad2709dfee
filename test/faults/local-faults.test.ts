import { faultSuite } from './harness.js';

// The fault suite on the local cluster (README.md): a detached job, its job master under its supervisor.
faultSuite({ name: 'local', spec: {} }, 15);
