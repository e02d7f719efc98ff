// Builds the dashboard (src/ui) into dist/ui: index.html, and app.<hash>.css and one minified
// app.<hash>.js with preact bundled in. The names carry a hash of the content, so the operator can
// let browsers keep them for good (immutable) while index.html, which names them, is revalidated:
// an upgraded operator's page loads its own assets, and a page load needs no request for unchanged
// ones. Each text file also gets .br and .gz siblings the operator serves to browsers that accept
// them. Nothing is fetched at run time: the operator serves these files at /ui/.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

function writeCompressed(path, content) {
  writeFileSync(path, content);
  writeFileSync(`${path}.br`, brotliCompressSync(content, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }));
  writeFileSync(`${path}.gz`, gzipSync(content, { level: 9 }));
}

const hashOf = (content) => createHash('sha256').update(content).digest('hex').slice(0, 12);

export async function buildUi(root) {
  const outdir = join(root, 'dist/ui');
  // Old hashed files would pile up: the directory holds one build.
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const result = await build({
    entryPoints: [join(root, 'src/ui/main.tsx')],
    write: false,
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
    outfile: join(outdir, 'app.js'),
  });
  const js = Buffer.from(result.outputFiles[0].contents);
  const css = readFileSync(join(root, 'src/ui/app.css'));
  const jsName = `app.${hashOf(js)}.js`;
  const cssName = `app.${hashOf(css)}.css`;
  writeCompressed(join(outdir, jsName), js);
  writeCompressed(join(outdir, cssName), css);
  const html = readFileSync(join(root, 'src/ui/index.html'), 'utf8').replace('href="app.css"', `href="${cssName}"`).replace('src="app.js"', `src="${jsName}"`);
  if (!html.includes(jsName) || !html.includes(cssName)) throw new Error('src/ui/index.html must name app.css and app.js');
  writeCompressed(join(outdir, 'index.html'), Buffer.from(html));
  return js.length;
}
