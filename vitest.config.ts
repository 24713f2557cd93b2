import { defineConfig } from 'vitest/config';

// Two suites: `unit` runs anywhere (fixtures are drawn in the tests), `data` needs the dev
// catalog (../shared/datasets/fashion-small or LOOKALIKE_DATASET) and skips without it.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'data',
          include: ['test/data/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 600_000,
          // Model-heavy files would fight over the two cores: run them one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
});
