import { defineConfig } from 'vitest/config';
import integration, { clusterSuites } from './vitest.integration.config.js';

// The Nomad and Kubernetes suites: run after scripts/build-nomad.sh and scripts/build-k8s.sh (`npm run build:clusters`),
// as a cold build takes far longer than a test hook may.
export default defineConfig({
  test: { ...integration.test, include: clusterSuites, exclude: [] },
});
