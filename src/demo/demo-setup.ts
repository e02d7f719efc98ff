import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { create as createTar } from 'tar';
import { stringify } from 'yaml';
import { stampBundle } from './stamp.js';

const run = promisify(execFile);

export interface DemoIdentities {
  /** Creates rollouts (role admin). */
  alice: string;
  /** Approves them: a second identity, as distinctApprover requires. */
  bob: string;
  agents: string;
  edge: string;
}

/** A tokens file with the demo's identities (random tokens, mode 0600). */
export function writeTokens(dir: string, random: () => string): { file: string; tokens: DemoIdentities } {
  const tokens: DemoIdentities = { alice: random(), bob: random(), agents: random(), edge: random() };
  const file = join(dir, 'tokens.yaml');
  writeFileSync(
    file,
    stringify({
      tokens: [
        { name: 'alice', token: tokens.alice, role: 'admin' },
        { name: 'bob', token: tokens.bob, role: 'approver' },
        { name: 'agents', token: tokens.agents, role: 'agent' },
        { name: 'edge', token: tokens.edge, role: 'viewer' },
      ],
    }),
    { mode: 0o600 },
  );
  return { file, tokens };
}

/** The demo's agent builds: the running bundle stamped 1.0.0 and 2.0.0, and a broken 2.0.1. */
export function writeBundles(bin: string, dir: string): Record<'v1' | 'v2' | 'broken', string> {
  mkdirSync(dir, { recursive: true });
  const bundles = { v1: join(dir, 'drydock-1.0.0.mjs'), v2: join(dir, 'drydock-2.0.0.mjs'), broken: join(dir, 'drydock-2.0.1.mjs') };
  stampBundle(bin, bundles.v1, '1.0.0');
  stampBundle(bin, bundles.v2, '2.0.0');
  stampBundle(bin, bundles.broken, '2.0.1', { brokenAgent: true });
  return bundles;
}

/** A `binary` component archive: a version file and a `health` executable that exits 0. */
export async function writeBinaryComponent(dir: string, version: string): Promise<string> {
  const root = join(dir, `hello-tool-${version}`);
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'VERSION'), `${version}\n`);
  writeFileSync(join(root, 'health'), '#!/bin/sh\nexit 0\n');
  chmodSync(join(root, 'health'), 0o755);
  const file = join(dir, `hello-tool-${version}.tar.gz`);
  await createTar({ gzip: true, file, cwd: root }, ['VERSION', 'health']);
  return file;
}

/**
 * Runs a drydock CLI command as a user would (the same bundle, DRYDOCK_URL and DRYDOCK_TOKEN)
 * and returns its output. A failing command fails the demo with its message.
 */
export async function cli(bin: string, operatorUrl: string, token: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(process.execPath, [bin, ...args], {
      env: { ...process.env, DRYDOCK_URL: operatorUrl, DRYDOCK_TOKEN: token },
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`drydock ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/**
 * Publishes `file` as `component` `version` through the CLI (`run`: a user's `drydock`), signed
 * with `key`, blesses it and, when `live`, promotes it; returns what it published, for the demo's output.
 */
export async function publishArtifact(run: (args: string[]) => Promise<string>, key: string, a: { component: string; version: string; kind: string; file: string; live: boolean }): Promise<string> {
  const id = (await run(['artifacts', 'publish', '--component', a.component, '--version', a.version, '--kind', a.kind, '--file', a.file, '--key', key])).trim();
  await run(['artifacts', 'bless', id]);
  if (a.live) await run(['artifacts', 'promote', id]);
  return `${a.component} ${a.version} (${a.kind}) ${a.live ? 'live' : 'blessed'}`;
}
