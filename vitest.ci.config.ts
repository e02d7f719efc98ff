import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// Checks that need tools CI installs (promtool); `.ci/run` runs them after `npm test`.
export default defineConfig({ ...base, test: { ...base.test, include: ['test/ci/**/*.test.ts'], exclude: ['node_modules/**'] } });
