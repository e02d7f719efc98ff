// Where a worker thread's code comes from (the plan worker, the embedded database's worker).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type * as Esbuild from 'esbuild';

const built = new Map<string, Promise<URL>>();

/**
 * The script a worker thread runs. Built, drydock is one file (dist/drydock.mjs, or a
 * benchmark's bundle) that contains every worker module: that file is started again as the
 * worker, and a marker in workerData sends it to the worker's job instead of the CLI. Run from
 * TypeScript sources (vitest), a worker thread cannot load .ts, so `workerModule` (a path
 * relative to the caller) is bundled once per process with esbuild (a dev dependency, there
 * whenever the sources are) into node_modules/.cache/drydock.
 */
export function workerScript(callerUrl: string, workerModule: string): Promise<URL> {
  const self = new URL(callerUrl);
  if (!self.pathname.endsWith('.ts')) return Promise.resolve(self);
  const entry = new URL(workerModule, self);
  let script = built.get(entry.href);
  if (!script) {
    script = buildFromSource(entry);
    built.set(entry.href, script);
  }
  return script;
}

async function buildFromSource(entry: URL): Promise<URL> {
  // Named through a variable so that bundling drydock never pulls esbuild in.
  const esbuildModule = 'esbuild';
  const esbuild = (await import(esbuildModule)) as typeof Esbuild;
  const result = await esbuild.build({
    entryPoints: [fileURLToPath(entry)],
    bundle: true,
    // Dependencies (pg, PGlite, zod, semver) resolve from node_modules: the output lives inside the checkout for that.
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]?.text ?? '';
  const dir = new URL('../node_modules/.cache/drydock/', import.meta.url);
  const name = fileURLToPath(entry).split('/').pop()?.replace(/\.ts$/, '') ?? 'worker';
  // Named by content: test files running in parallel share one build, and a changed worker
  // never runs stale code.
  const file = new URL(`${name}-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`, dir);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    const temporary = new URL(`${file.href}.${process.pid}.tmp`);
    writeFileSync(temporary, code);
    renameSync(temporary, file);
  }
  return file;
}
