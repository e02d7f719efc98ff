import { execFile } from 'node:child_process';
import { createHash, type KeyObject } from 'node:crypto';
import { createWriteStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import type { Logger } from 'pino';
import { x as untar } from 'tar';
import { refusalReason } from '../agent/components/verify.js';
import { OPERATOR_BUNDLE_FILE } from '../control-plane/operator-artifact.js';
import type { SchemaPhase } from '../domain/rollout/schema-steps.js';
import { replicasBlockingExpand } from '../domain/schema-compat.js';
import { findArtifactByVersion } from '../store/artifacts.js';
import { listReplicas } from '../store/operator-replicas.js';
import { REPLICA_STALE_AFTER_MS } from './replica-registry.js';
import { findBlob, openBlobStream } from '../store/blobs.js';
import type { Db } from '../store/db.js';

export interface SchemaStepOptions {
  /** The PostgreSQL server the target build migrates (the operator's own; absent on the embedded engine). */
  databaseUrl: string | undefined;
  /** Keys whose signatures make a build trusted enough to run here (the operator's --trusted-key). */
  trustedKeys: readonly KeyObject[];
  /** Development only: run unsigned builds' migrations (the operator's --allow-unsigned). */
  allowUnsigned: boolean;
  /** Bound on one `migrate up` run (default 10 min). */
  timeoutMs?: number;
  log: Logger;
}

export type SchemaStepResult = { ok: true; applied: string[]; output: string } | { ok: false; reason: string };

/**
 * Applies a target operator build's migrations for a control-plane rollout (DESIGN.md §11). The
 * leader runs the OLD build, which does not know the new migrations: it takes the target's
 * artifact from the blob store, checks its digest and signature like an agent would, and runs
 * that build's own `drydock migrate up --phase pre|post` against the database. The target's
 * `migrate up --phase post` itself refuses to contract while a live replica runs a build that
 * does not know the contract, so a replica that did not move cannot be cut off.
 */
export class SchemaStepRunner {
  constructor(
    private readonly db: Db,
    private readonly options: SchemaStepOptions,
  ) {}

  async run(component: string, version: string, phase: SchemaPhase): Promise<SchemaStepResult> {
    if (phase === 'pre') {
      // Every running replica's build must declare it tolerates a newer build's expand.
      const blocking = replicasBlockingExpand(await listReplicas(this.db, REPLICA_STALE_AFTER_MS));
      if (blocking.length > 0) {
        const list = blocking.map((r) => `${r.hostname} (${r.region}, ${r.version})`).join(', ');
        return { ok: false, reason: `not expanding: ${blocking.length} running replica(s) do not tolerate a newer build's expand migrations: ${list}; upgrade or stop them first` };
      }
    }
    if (!this.options.databaseUrl) {
      return { ok: false, reason: 'migrations: auto needs the operators on a PostgreSQL server (DATABASE_URL); on the embedded engine set migrations: manual' };
    }
    const artifact = await findArtifactByVersion(this.db, component, version);
    if (!artifact) return { ok: false, reason: `${component} ${version} is not published` };
    if (artifact.kind !== 'operator') return { ok: false, reason: `${component} ${version} is an artifact of kind ${artifact.kind}, not operator` };
    const blob = await findBlob(this.db, artifact.sha256);
    if (!blob) return { ok: false, reason: `the bytes of ${component} ${version} are missing from the blob store` };
    const dir = mkdtempSync(join(tmpdir(), 'drydock-schema-step-'));
    try {
      const archive = join(dir, 'artifact.tar.gz');
      const hash = createHash('sha256');
      const hashing = new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      });
      await pipeline(openBlobStream(this.db, blob), hashing, createWriteStream(archive));
      const refusal = refusalReason(component, artifact, hash.digest('hex'), { trustedKeys: [...this.options.trustedKeys], allowUnsigned: this.options.allowUnsigned });
      if (refusal) return { ok: false, reason: `${component} ${version} refused: ${refusal} (the operator's --trusted-key)` };
      await untar({ file: archive, cwd: dir, strict: true });
      const bundle = join(dir, OPERATOR_BUNDLE_FILE);
      if (!existsSync(bundle)) return { ok: false, reason: `${component} ${version} has no ${OPERATOR_BUNDLE_FILE}` };
      return await this.migrate(bundle, phase);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  private migrate(bundle: string, phase: SchemaPhase): Promise<SchemaStepResult> {
    const args = [bundle, 'migrate', 'up', '--phase', phase];
    const env = { ...process.env, DATABASE_URL: this.options.databaseUrl, DRYDOCK_LOG_FORMAT: 'json' };
    return new Promise((resolve) => {
      execFile(process.execPath, args, { env, timeout: this.options.timeoutMs ?? 600_000, maxBuffer: 1024 * 1024 }, (error, stdout, stderr) => {
        const output = `${stdout}${stderr}`.trim();
        if (error) {
          const tail = output.split('\n').slice(-5).join('\n');
          resolve({ ok: false, reason: `migrate up --phase ${phase} failed (${error.killed ? 'timed out' : `exit code ${String(error.code)}`}): ${tail}` });
          return;
        }
        const applied = [...stdout.matchAll(/^applied (\S+) \((pre|post)\)$/gm)].map((m) => m[1] as string);
        this.options.log.info({ phase, applied }, 'applied the target build\'s schema migrations');
        resolve({ ok: true, applied, output });
      });
    });
  }
}
