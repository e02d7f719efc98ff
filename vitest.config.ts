import { defineConfig } from 'vitest/config';

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
    exclude: ['test/ci/**', 'node_modules/**'],
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
