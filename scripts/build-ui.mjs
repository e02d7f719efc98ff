// Builds the dashboard (src/ui) into dist/ui: index.html, app.css and one minified app.js with
// preact bundled in. Nothing is fetched at run time: the operator serves these files at /ui/.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export async function buildUi(root) {
  const outdir = join(root, 'dist/ui');
  mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints: [join(root, 'src/ui/main.tsx')],
    outfile: join(outdir, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'firefox115', 'safari16'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'warning',
  });
  for (const file of ['index.html', 'app.css']) copyFileSync(join(root, 'src/ui', file), join(outdir, file));
  return statSync(join(outdir, 'app.js')).size;
}
