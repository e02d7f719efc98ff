// Builds dist/drydock.mjs: the whole CLI (operator, agent, edge, demo) as one ESM file.
// The single file is also the agent's upgrade artifact, so it must not depend on the
// source tree. Only PGlite stays external: it loads its WASM from its own package and
// only the operator's embedded-database mode needs it (an agent never does).
import { build } from 'esbuild';
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { commonOptions } from './esbuild-options.mjs';
import { buildUi } from './build-ui.mjs';

const root = new URL('..', import.meta.url).pathname;
const outfile = join(root, 'dist/drydock.mjs');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

if (process.argv.includes('--if-stale') && existsSync(outfile)) {
  const sources = Math.max(newestMtime(join(root, 'src')), statSync(join(root, 'package.json')).mtimeMs);
  if (statSync(outfile).mtimeMs >= sources) process.exit(0);
}

// DRYDOCK_BUILD_VERSION stamps another version into the bundle (used to make "v2" artifacts
// of the same code for upgrade drills); by default the package version is used.
const version = process.env.DRYDOCK_BUILD_VERSION ?? pkg.version;
const started = Date.now();
await build({
  entryPoints: [join(root, 'src/cli/main.ts')],
  outfile: process.env.DRYDOCK_BUILD_OUTFILE ?? outfile,
  ...commonOptions,
  // The version lives on one line of its own at the top of the bundle, so a built bundle can be
  // re-stamped as another version without a rebuild (the demo publishes "v2" of the same build).
  define: { DRYDOCK_VERSION: '__drydock_version' },
  banner: { js: `${commonOptions.banner.js}\nconst __drydock_version = ${JSON.stringify(version)};` },
});
console.log(`built ${process.env.DRYDOCK_BUILD_OUTFILE ?? 'dist/drydock.mjs'} (drydock ${version}) in ${Date.now() - started} ms`);
// The dashboard's static files (dist/ui), served by the operator at /ui/; not for re-stamped bundles.
if (!process.env.DRYDOCK_BUILD_OUTFILE) {
  const uiStarted = Date.now();
  const bytes = await buildUi(root);
  console.log(`built dist/ui (dashboard, app.js ${Math.round(bytes / 1024)} KiB) in ${Date.now() - uiStarted} ms`);
}
