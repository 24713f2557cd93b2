import path from 'node:path';
import { defineConfig } from 'vitest/config';

// Four projects, by what a test needs (`npm test` runs them all, `npm run test:NAME` one):
// - unit: nothing but this checkout: no model, no PostgreSQL or Redis, no browser, no child
//   process; seconds. The model cache, the services and chromium are pointed at places that
//   cannot answer, so a test that needs them fails here instead of passing on a machine that
//   happens to have them: such a test belongs in integration or e2e.
// - integration: the ResNet (converted on first use into the model cache), PostgreSQL and
//   Redis on 127.0.0.1 (.ci/run starts them; LOOKALIKE_TEST_PG, LOOKALIKE_TEST_REDIS), the
//   CLI run as a process.
// - e2e: the page and the reports in chromium (LOOKALIKE_CHROMIUM; skipped without it).
// - data: the dev catalog (../shared/datasets/fashion-small or LOOKALIKE_DATASET; skipped without it).
const NOWHERE = path.join(import.meta.dirname, 'package.json', 'unreachable');

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          env: {
            // A folder under a file: nothing can be converted or cached there.
            LOOKALIKE_CACHE: path.join(NOWHERE, 'cache'),
            LOOKALIKE_TEST_PG: 'postgres://postgres@127.0.0.1:1/test',
            LOOKALIKE_TEST_REDIS: 'redis://127.0.0.1:1',
            LOOKALIKE_CHROMIUM: path.join(NOWHERE, 'chromium'),
            LOOKALIKE_DATASET: path.join(NOWHERE, 'dataset'),
          },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.e2e.test.ts'],
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
