// A real OCI registry for end-to-end tests: Debian's `docker-registry` (the CNCF distribution
// registry), on a free loopback port with its storage in a temp dir, and pushes through its
// HTTP API (blob uploads, then an OCI image manifest) exactly as any client pushes.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, isSameProcessAlive } from '../../src/agent/drivers/process-driver.js';
import { waitFor } from '../../src/demo/local-fleet.js';

export const REGISTRY_BIN = '/usr/bin/docker-registry';

export interface TestRegistry {
  /** `127.0.0.1:PORT`, as an `oci://` reference names it. */
  host: string;
  pid: number;
  log: string;
  stop(): Promise<void>;
}

/** Starts the registry; throws (the test fails, never skips) when the package is not installed. */
export async function startRegistry(dir: string): Promise<TestRegistry> {
  if (!existsSync(REGISTRY_BIN)) throw new Error(`${REGISTRY_BIN} is missing: apt-get install -y docker-registry (.ci/run installs it)`);
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  mkdirSync(join(dir, 'storage'), { recursive: true });
  const config = join(dir, 'registry.yml');
  writeFileSync(
    config,
    ['version: 0.1', 'log:', '  level: info', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'storage')}`, 'http:', `  addr: ${host}`, ''].join('\n'),
  );
  const log = join(dir, 'registry.log');
  const out = openSync(log, 'a');
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', out, out] });
  const pid = child.pid;
  if (pid === undefined) throw new Error('docker-registry did not start');
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const stop = async () => {
    if (exited || !isSameProcessAlive(pid, null)) return;
    process.kill(pid, 'SIGTERM');
    await waitFor('the registry to exit', async () => (exited ? true : undefined), 10_000).catch(() => process.kill(pid, 'SIGKILL'));
  };
  try {
    await waitFor(
      `the registry on ${host}`,
      async () => {
        if (exited) throw new Error(`docker-registry exited: ${readFileSync(log, 'utf8').slice(-2000)}`);
        const response = await fetch(`http://${host}/v2/`).catch(() => undefined);
        return response?.status === 200 ? true : undefined;
      },
      20_000,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { host, pid, log, stop };
}

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Monolithic blob upload: POST …/blobs/uploads/, then PUT the bytes to its Location with ?digest=. */
async function pushBlob(host: string, repository: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  const started = await fetch(`http://${host}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  await started.body?.cancel();
  if (started.status !== 202) throw new Error(`blob upload start answered ${started.status}`);
  const location = new URL(started.headers.get('location') ?? '', `http://${host}`);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(bytes) });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`blob upload answered ${put.status}: ${text}`);
  return digest;
}

/**
 * Pushes `file` as the single layer of an OCI image manifest tagged `tag` in `repository`.
 * Returns the digests of the layer (what an os-image reference's sha256 signs) and the manifest.
 */
export async function pushImage(host: string, repository: string, tag: string, file: string): Promise<{ layer: string; manifest: string }> {
  const bytes = readFileSync(file);
  const layer = await pushBlob(host, repository, bytes);
  const configBytes = Buffer.from('{}');
  const config = await pushBlob(host, repository, configBytes);
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: configBytes.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer, size: bytes.length }],
    }),
  );
  const put = await fetch(`http://${host}/v2/${repository}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: new Uint8Array(manifestBytes),
  });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`manifest push answered ${put.status}: ${text}`);
  return { layer, manifest: sha256(manifestBytes) };
}
