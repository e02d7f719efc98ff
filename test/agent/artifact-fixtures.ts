import { createHash } from 'node:crypto';
import { chmodSync, createReadStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { create as createTar } from 'tar';
import { ComponentReconciler, type ComponentReconcilerOptions } from '../../src/agent/components/component-reconciler.js';
import type { ArtifactKind, DesiredComponent, InstallReport } from '../../src/domain/protocol.js';
import { generateSigningKeyPair, publicKeyFromPem, signArtifact } from '../../src/signing.js';

export const TOKEN = 'agent-token-for-tests';

export function tempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `drydock-${name}-`));
}

/** Builds a real .tar.gz from `files` (name → content; executables when the content starts with #!). */
export async function buildArchive(dir: string, files: Record<string, string>): Promise<string> {
  const src = mkdtempSync(join(dir, 'src-'));
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(join(src, name), content);
    if (content.startsWith('#!')) chmodSync(join(src, name), 0o755);
  }
  const file = `${src}.tar.gz`;
  await createTar({ gzip: true, file, cwd: src, portable: true }, readdirSync(src));
  rmSync(src, { recursive: true, force: true });
  return file;
}

export function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/**
 * Stands in for the operator's blob download: a plain HTTP server serving files by path,
 * that insists on the agent's bearer token.
 */
export class BlobServer {
  readonly files = new Map<string, string>();
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const file = this.files.get(req.url ?? '');
      if (req.headers.authorization !== `Bearer ${TOKEN}`) return void res.writeHead(401).end();
      if (!file) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      createReadStream(file).pipe(res);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    this.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

export const publisher = generateSigningKeyPair();
export const stranger = generateSigningKeyPair();

/** Serves `archive` and returns the desired component for it, signed by `signer` unless null. */
export function publish(
  server: BlobServer,
  archive: string,
  a: { component: string; version: string; kind?: ArtifactKind; rollback?: boolean; signer?: string | null; sha256?: string },
): DesiredComponent {
  const kind = a.kind ?? 'binary';
  const sha256 = a.sha256 ?? sha256File(archive);
  const url = `/api/v1/artifacts/${a.component}-${a.version}/blob`;
  server.files.set(url, archive);
  const signer = a.signer === undefined ? publisher.privatePem : a.signer;
  return {
    version: a.version,
    artifact_id: `${a.component}-${a.version}`,
    kind,
    sha256,
    size: readFileSync(archive).length,
    signature: signer === null ? null : signArtifact(signer, { component: a.component, version: a.version, kind, sha256 }),
    url,
    rollback: a.rollback ?? false,
    disruptive: false,
  };
}

export function reconciler(dataDir: string, server: BlobServer, over: Partial<ComponentReconcilerOptions> = {}) {
  const changes: InstallReport[] = [];
  const r = new ComponentReconciler({
    dataDir,
    operatorUrl: server.url,
    token: TOKEN,
    nodeId: () => 'node-7',
    trust: { trustedKeys: [publicKeyFromPem(publisher.publicPem)], allowUnsigned: false },
    healthDeadlineMs: 5000,
    scriptDeadlineMs: 5000,
    onPhaseChange: (report) => changes.push(report),
    log: pino({ level: 'silent' }),
    ...over,
  });
  return { r, changes };
}

export function ensureDir(path: string): string {
  mkdirSync(path, { recursive: true });
  return path;
}
