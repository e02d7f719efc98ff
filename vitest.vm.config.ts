import { defineConfig } from 'vitest/config';
import base, { skipVmSuite } from './vitest.config.js';

// The VM suite (test/vm) on its own, one file at a time, after the rest of `npm test`: its guests
// run under TCG (software emulation), and sharing the two cores with the end-to-end files that
// start fleets of agents starved them enough to make live migrations miss their windows.
export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: skipVmSuite ? [] : ['test/vm/**/*.test.ts'],
    exclude: ['node_modules/**'],
    maxWorkers: 1,
    passWithNoTests: skipVmSuite,
  },
});
