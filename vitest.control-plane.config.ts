import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// The control plane upgrading itself (test/control-plane): 9 operator replicas, 9 agents and an
// edge on the PostgreSQL server, timing-sensitive only in that its waits are bounded. It runs
// alone (`npm run test:control-plane`, and in .ci/run after the Postgres suite), one file at a
// time, so no other suite shares the two cores with it.
export default defineConfig({
  ...base,
  test: { ...base.test, include: ['test/control-plane/**/*.test.ts'], exclude: ['node_modules/**'], maxWorkers: 1, hookTimeout: 300_000 },
});
