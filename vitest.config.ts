import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests start real processes; two cores, so keep parallelism modest.
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'repo', include: ['test/**/*.test.ts'], exclude: ['test/real/**'], sequence: { groupOrder: 0 } } },
      // Real peers (a Docker engine, a cluster) load the machine: they run after the timing-sensitive
      // suites (soak, benchmarks of latency), not beside them.
      { extends: true, test: { name: 'real', include: ['test/real/**/*.test.ts'], sequence: { groupOrder: 1 } } },
    ],
  },
});
