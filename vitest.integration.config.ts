import { defineConfig } from 'vitest/config';

// Integration tests start real processes; on a 2-core machine they run one file at a time.
export default defineConfig({
  test: {
    include: ['test/integration/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
