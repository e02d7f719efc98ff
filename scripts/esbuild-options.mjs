// esbuild settings shared by the CLI bundle and the benchmarks: SQL migrations load as text,
// PGlite stays external (it loads its WASM from its own package), CommonJS deps get require().
export const commonOptions = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: false,
  legalComments: 'none',
  loader: { '.sql': 'text' },
  external: ['@electric-sql/pglite', '@electric-sql/pglite/*', 'pg-native'],
  banner: { js: "import { createRequire as __drydockRequire } from 'node:module'; const require = __drydockRequire(import.meta.url);" },
  logLevel: 'warning',
};
