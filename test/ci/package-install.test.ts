// The package as a user gets it: `npm pack` (which builds on prepack), `npm install -g` of the
// tarball into a temporary prefix, then the installed `drydock` run from outside the checkout
// with a bare environment, so nothing can resolve from this repository's node_modules.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/agent/drivers/process-driver.js';
import { isAlive, waitFor } from '../../src/demo/local-fleet.js';

const root = resolve(import.meta.dirname, '../..');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
/** What a clean machine has: node on PATH, the basic tools, an empty home. */
const cleanEnv = (home: string) => ({ PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, HOME: home, DRYDOCK_LOG_FORMAT: 'json' });

function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }) {
  const result = spawnSync(command, args, { ...options, encoding: 'utf8', timeout: 240_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr, output: `${result.stdout}${result.stderr}` };
}

describe('npm pack → npm install -g → drydock runs on the embedded database', () => {
  const work = mkdtempSync(join(tmpdir(), 'drydock-package-'));
  const prefix = join(work, 'prefix');
  const home = join(work, 'home');
  const installed = join(prefix, 'bin', 'drydock');
  let tarball = '';
  const started: ChildProcess[] = [];

  beforeAll(() => {
    mkdirSync(home);
    const pack = run('npm', ['pack', '--pack-destination', work, '--json'], { cwd: root });
    expect(pack.code, pack.stderr).toBe(0);
    // npm prints the prepack build's output before the JSON report.
    const report = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
    tarball = join(work, report[0]!.filename);
    const install = run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: work });
    expect(install.code, install.output).toBe(0);
  }, 300_000);

  afterAll(async () => {
    for (const child of started) if (child.pid && isAlive(child.pid)) process.kill(child.pid, 'SIGKILL');
    expect(started.filter((c) => c.pid && isAlive(c.pid))).toEqual([]);
    rmSync(work, { recursive: true, force: true });
  });

  it('the tarball holds the launcher, the bundle and the units, not the sources', () => {
    const list = run('tar', ['-tzf', tarball], { cwd: work });
    const files = list.stdout.trim().split('\n').sort();
    expect(files).toContain('package/bin/drydock.mjs');
    expect(files).toContain('package/dist/drydock.mjs');
    expect(files).toContain('package/deploy/systemd/drydock-operator.service');
    expect(files.filter((f) => /^package\/(src|test|scripts|bench)\//.test(f))).toEqual([]);
  });

  it('installs only the embedded engine beside the bundle (everything else is bundled)', () => {
    const modules = join(prefix, 'lib', 'node_modules', 'drydock', 'node_modules');
    expect(readdirSync(modules).filter((name) => !name.startsWith('.'))).toEqual(['@electric-sql']);
  });

  it('`drydock --version` prints the package version', () => {
    const result = run(installed, ['--version'], { cwd: work, env: cleanEnv(home) });
    expect(result.output).toBe(`${version}\n`);
    expect(result.code).toBe(0);
  });

  it('`drydock operator` starts on the embedded database and answers /health', async () => {
    const port = await freePort();
    const child = spawn(installed, ['operator', '--listen', `127.0.0.1:${port}`, '--data-dir', join(work, 'data')], {
      cwd: work,
      env: cleanEnv(home),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.push(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));

    const health = await waitFor(
      `the installed operator on port ${port} to answer /health (output so far: ${output})`,
      async () => {
        if (child.exitCode !== null) throw new Error(`the operator exited with ${child.exitCode}: ${output}`);
        const response = await fetch(`http://127.0.0.1:${port}/health`);
        return response.status === 200 ? ((await response.json()) as { status: string; version?: string }) : undefined;
      },
      90_000,
    );
    expect(health.status).toBe('healthy');
    expect(existsSync(join(work, 'data', 'pgdata', 'PG_VERSION'))).toBe(true);
    const nodes = await fetch(`http://127.0.0.1:${port}/api/v1/nodes`);
    expect(nodes.status).toBe(200);
    expect(await nodes.json()).toEqual([]);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 120_000);

  it('the bundle copied alone says how to get the embedded engine instead of "Cannot find package"', () => {
    const bare = join(work, 'bare');
    mkdirSync(bare);
    copyFileSync(join(prefix, 'lib', 'node_modules', 'drydock', 'dist', 'drydock.mjs'), join(bare, 'drydock.mjs'));
    const result = run(process.execPath, [join(bare, 'drydock.mjs'), 'operator', '--listen', '127.0.0.1:0', '--data-dir', join(bare, 'data')], {
      cwd: bare,
      env: cleanEnv(home),
    });
    expect(result.stderr).toContain('the embedded database engine (@electric-sql/pglite) is not installed beside this drydock');
    expect(result.stderr).toContain('--database-url');
    expect(result.code).toBe(1);
  });
});
