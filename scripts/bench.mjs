// Runs a benchmark from bench/: bundles it like the CLI (SQL as text) into dist/bench/, then
// runs it with the remaining arguments. Usage: node scripts/bench.mjs heartbeats [args...]
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { build } from 'esbuild';
import { commonOptions } from './esbuild-options.mjs';

const root = new URL('..', import.meta.url).pathname;
const [name = 'heartbeats', ...args] = process.argv.slice(2);
const outfile = join(root, 'dist/bench', `${name}.mjs`);
// playwright-core (the browser bench) stays external: it loads its own files at run time.
await build({ ...commonOptions, external: [...commonOptions.external, 'playwright-core'], entryPoints: [join(root, 'bench', `${name}.ts`)], outfile, define: { DRYDOCK_VERSION: '"bench"' } });
const result = spawnSync(process.execPath, [outfile, ...args], { stdio: 'inherit', cwd: root });
process.exit(result.status ?? 1);
