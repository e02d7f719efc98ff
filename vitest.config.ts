import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

// The VM suite (test/vm) boots real QEMU guests built from Debian's kernel and busybox-static.
// Without them `npm test` says so loudly and runs the rest; CI (CI=true) always runs it, so a
// missing QEMU there fails instead of passing quietly.
const vmTools = spawnSync('qemu-system-x86_64', ['--version']).status === 0 && (existsSync('/bin/busybox') || existsSync('/usr/bin/busybox'));
export const skipVmSuite = !vmTools && process.env.CI !== 'true';
if (skipVmSuite) {
  console.warn(
    '\n!!! THE VM SUITE (test/vm) DID NOT RUN: qemu-system-x86_64 or busybox-static is missing. ' +
      'Install them with `apt-get install -y qemu-system-x86 busybox-static` to run it. !!!\n',
  );
}

// The dashboard's browser tests (test/ui) drive Debian's Chromium; without it they are skipped
// loudly outside CI, and CI (which installs it) always runs them.
const chromium = existsSync(process.env.DRYDOCK_CHROMIUM ?? '/usr/bin/chromium');
const skipUiSuite = !chromium && process.env.CI !== 'true';
if (skipUiSuite) {
  console.warn('\n!!! THE DASHBOARD BROWSER SUITE (test/ui) DID NOT RUN: /usr/bin/chromium is missing. Install it with `apt-get install -y chromium`. !!!\n');
}

export default defineConfig({
  plugins: [
    {
      // Migrations are .sql files imported as text (esbuild's text loader does the same in the bundle).
      name: 'sql-as-text',
      transform(code, id) {
        if (id.endsWith('.sql')) return { code: `export default ${JSON.stringify(code)};`, map: null };
        return undefined;
      },
    },
  ],
  test: {
    include: ['test/**/*.test.ts'],
    // test/vm runs after the rest, alone (vitest.vm.config.ts; `npm test` runs both).
    exclude: ['test/ci/**', 'test/control-plane/**', 'test/vm/**', 'node_modules/**', ...(skipUiSuite ? ['test/ui/**'] : [])],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    // Two cores: end-to-end files start many processes each; more parallel files only add noise.
    maxWorkers: 2,
    // A bound on a hung test, not a speed check: end-to-end files wait up to 90 s for a rollout
    // and run much slower when the two cores are shared, so 60 s failed healthy runs.
    testTimeout: 180_000,
    hookTimeout: 90_000,
  },
});
