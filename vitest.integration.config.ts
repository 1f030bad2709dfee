import { defineConfig } from 'vitest/config';

/** Suites that need the Nomad and Kubernetes binaries built from Go modules: vitest.clusters.config.ts runs them. */
export const clusterSuites = [
  'test/integration/nomad-agent.test.ts',
  'test/integration/nomad.test.ts',
  'test/integration/nomad-placement.test.ts',
  'test/integration/nomad-storage.test.ts',
  'test/integration/kube-cluster.test.ts',
  'test/integration/kube-pod-runner.test.ts',
  'test/integration/kube-pod-network.test.ts',
  'test/integration/k8s-storage.test.ts',
  'test/integration/k8s-objects.test.ts',
  'test/integration/k8s.test.ts',
  'test/faults/nomad-faults.test.ts',
  'test/faults/k8s-faults.test.ts',
];

// Integration tests start real processes; on a 2-core machine they run one file at a time.
export default defineConfig({
  test: {
    include: ['test/integration/**/*.test.ts', 'test/faults/**/*.test.ts'],
    exclude: clusterSuites,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
