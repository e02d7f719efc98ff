import type { KeyObject } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { LIFECYCLE_ACTIONS, type LifecycleAction, lifecycleStep } from '../../domain/artifact-lifecycle.js';
import { ROLLBACK_CAPABLE_STATUSES, TASK_STATES_NEEDING_FROM_VERSION } from '../../domain/rollout/rollback-needs.js';
import { keyId, publicKeyFromPem, verifyArtifact } from '../../signing.js';
import { type ArtifactView as ArtifactViewRow, findArtifact, findArtifactByVersion, insertArtifact, listArtifacts, lockArtifact, nodesUsingVersion, rolloutsNeedingVersion, setLifecycle } from '../../store/artifacts.js';
import { BlobTooLargeError, commitBlob, discardStaged, findBlob, openBlobStream, stageBlob } from '../../store/blobs.js';
import { appendEvents } from '../../store/events.js';
import type { OperatorContext } from '../context.js';
import { errors } from '../errors.js';
import { rolloutErrors } from '../rollout-errors.js';
import { actorOf } from '../request-actor.js';
import { ArtifactListQuery, ArtifactUploadQuery, ArtifactView, IdParam } from '../schemas.js';
import { TextBody } from '../response-views.js';
import { EVENT, type EventKind } from '../../domain/events.js';
import { parseComponentRef } from '../../domain/artifact-ref.js';
import { REBOOT_CLASS_KINDS } from '../../domain/install-plan.js';
import { parseOciRef } from '../../domain/oci-ref.js';
import type { ArtifactKind } from '../../domain/protocol.js';
import type { Db } from '../../store/db.js';

/** 2 GiB: room for OS images; the bytes stream to Postgres, so the limit is about storage, not memory. */
export const MAX_ARTIFACT_BYTES = 2 * 1024 ** 3;

const EVENT_OF: Record<LifecycleAction, EventKind> = { bless: EVENT.artifact.blessed, promote: EVENT.artifact.promoted, archive: EVENT.artifact.archived };

/** By id, or as `component@version` (what `node show` prints). */
async function mustFindArtifact(ctx: OperatorContext, id: string) {
  const ref = parseComponentRef(id);
  const artifact = ref ? await findArtifactByVersion(ctx.db, ref.component, ref.version) : await findArtifact(ctx.db, id);
  if (!artifact) throw errors.artifactNotFound(id, 'list artifacts with GET /api/v1/artifacts (`drydock artifacts list`)');
  return artifact;
}

/**
 * Streams an artifact's bytes from the database. The one download path, behind two doors:
 * people's `/api/v1/artifacts/:id/blob` and the agent gateway's (routes/agent.ts), each with its
 * own access check.
 */
export async function sendArtifactBlob(ctx: OperatorContext, reply: FastifyReply, id: string): Promise<FastifyReply> {
  const artifact = await mustFindArtifact(ctx, id);
  if (artifact.ref !== null) throw errors.artifactNotFound(artifact.id, `it was published by reference: its bytes are in the registry at ${artifact.ref}`);
  const blob = await findBlob(ctx.db, artifact.sha256);
  if (!blob) throw errors.artifactNotFound(artifact.id, 'its bytes are gone; publish it again');
  return reply
    .header('content-type', 'application/octet-stream')
    .header('content-length', String(blob.size))
    .header('x-drydock-sha256', blob.sha256)
    .send(openBlobStream(ctx.db, blob));
}

function isStream(body: unknown): body is Readable {
  return typeof body === 'object' && body !== null && typeof (body as Readable).pipe === 'function' && Symbol.asyncIterator in body;
}

/** Whether the request carries bytes (a declared length above 0, or a chunked body). */
function hasBody(headers: { 'content-length'?: string | undefined; 'transfer-encoding'?: string | undefined }): boolean {
  return headers['transfer-encoding'] !== undefined || Number(headers['content-length'] ?? 0) > 0;
}

type Claim = { component: string; version: string; kind: ArtifactKind; sha256: string };

/**
 * An os-image published by reference (issue 12, item 1): no bytes come, the image stays in its
 * OCI registry; the signature covers the same fields as an upload's, `sha256` being the digest
 * of the image blob the agent fetches and checks. Everything is checked before anything is stored.
 */
async function publishByRef(
  ctx: OperatorContext,
  actor: string,
  q: { component: string; version: string; kind: ArtifactKind; sha256: string; ref: string; signature?: string | undefined; disruptive?: boolean | undefined },
  opts: { key: KeyObject | undefined; reboot: boolean; hasBody: boolean },
): Promise<{ artifact: ArtifactViewRow; created: boolean }> {
  if (q.kind !== 'os-image') throw errors.ociRefNotOsImage(q.kind);
  if (opts.hasBody) throw errors.ociRefWithBody();
  const parsed = parseOciRef(q.ref);
  if (!parsed.ok) throw errors.ociRefInvalid(parsed.reason);
  const claim = { component: q.component, version: q.version, kind: q.kind, sha256: q.sha256 };
  if (opts.key && q.signature && !verifyArtifact([opts.key], q.signature, claim)) throw errors.signatureInvalid(keyId(opts.key));
  return ctx.db.transaction((tx) =>
    storeArtifact(tx, ctx, actor, { claim, size: 0, ref: q.ref, signature: q.signature ?? null, key: opts.key, disruptive: q.disruptive ?? false, reboot: opts.reboot }),
  );
}

/** Inserts the artifact and its `artifact.published` event; publishing the very same artifact again is a no-op. */
async function storeArtifact(
  tx: Db,
  ctx: OperatorContext,
  actor: string,
  a: { claim: Claim; size: number; ref: string | null; signature: string | null; key: KeyObject | undefined; disruptive: boolean; reboot: boolean },
): Promise<{ artifact: ArtifactViewRow; created: boolean }> {
  const { claim, disruptive, reboot, ref } = a;
  const result = await insertArtifact(tx, {
    id: ctx.newId(),
    ...claim,
    size: a.size,
    signature: a.signature,
    keyId: a.key ? keyId(a.key) : null,
    disruptive,
    reboot,
    ref,
    createdBy: actor,
  });
  const stored = result.artifact;
  if (!result.created) {
    // Publishing again is harmless only when it is the very same artifact.
    if (stored.sha256 !== claim.sha256 || stored.kind !== claim.kind || stored.disruptive !== disruptive || stored.reboot !== reboot || stored.ref !== ref) {
      throw errors.artifactVersionExists(claim.component, claim.version, stored.sha256, claim.sha256);
    }
    return result;
  }
  await appendEvents(tx, [
    {
      kind: EVENT.artifact.published,
      actor,
      data: {
        artifact_id: stored.id,
        component: stored.component,
        version: stored.version,
        kind: stored.kind,
        sha256: stored.sha256,
        size: stored.size,
        signed: stored.signature !== null,
        key_id: stored.key_id,
        reboot: stored.reboot,
        ...(stored.ref === null ? {} : { ref: stored.ref }),
      },
    },
  ]);
  return result;
}

export async function artifactRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['artifacts'];
  // The upload body is handed to the route as the raw request stream, never buffered.
  app.addContentTypeParser('application/octet-stream', { bodyLimit: MAX_ARTIFACT_BYTES }, (_req, payload, done) => done(null, payload));

  app.post(
    '/api/v1/artifacts',
    {
      bodyLimit: MAX_ARTIFACT_BYTES,
      schema: {
        tags,
        operationId: 'publishArtifact',
        querystring: ArtifactUploadQuery,
        summary: 'Publish an artifact: metadata in the query, the file as an application/octet-stream body (streamed); or an os-image by reference (ref=oci://…, sha256, no body)',
        response: { 200: ArtifactView, 201: ArtifactView },
      },
    },
    async (req, reply) => {
      const q = req.query;
      // Only an OS image reboots its node (into an A/B slot), and it always does: the agent's
      // slots are how it is installed.
      const reboot = REBOOT_CLASS_KINDS.includes(q.kind);
      if (q.reboot === true && !reboot) throw errors.rebootNotOsImage(q.kind);
      if (q.reboot === false && reboot) throw errors.osImageAlwaysReboots(q.kind);
      let key: ReturnType<typeof publicKeyFromPem> | undefined;
      if (q.public_key !== undefined) {
        try {
          key = publicKeyFromPem(q.public_key);
        } catch (error) {
          throw errors.badPublicKey((error as Error).message, error);
        }
      }
      if (q.ref !== undefined) {
        const outcome = await publishByRef(ctx, actorOf(req), { ...q, ref: q.ref, sha256: q.sha256 ?? '' }, { key, reboot, hasBody: hasBody(req.headers) });
        return reply.code(outcome.created ? 201 : 200).send(outcome.artifact);
      }
      if (!isStream(req.body)) throw errors.unsupportedUpload(req.headers['content-type'] ?? '');
      const staged = await stageBlob(ctx.db, req.body, { maxBytes: MAX_ARTIFACT_BYTES }).catch((error: unknown) => {
        throw error instanceof BlobTooLargeError ? errors.artifactTooLarge(error.limit) : error;
      });
      let outcome: { artifact: ArtifactViewRow; created: boolean };
      try {
        if (staged.size === 0) throw errors.artifactEmpty();
        if (q.sha256 !== undefined && q.sha256 !== staged.sha256) throw errors.digestMismatch(q.sha256, staged.sha256);
        const claim = { component: q.component, version: q.version, kind: q.kind, sha256: staged.sha256 };
        if (key && q.signature && !verifyArtifact([key], q.signature, claim)) throw errors.signatureInvalid(keyId(key));
        outcome = await ctx.db.transaction(async (tx) => {
          await commitBlob(tx, staged);
          return storeArtifact(tx, ctx, actorOf(req), { claim, size: staged.size, ref: null, signature: q.signature ?? null, key, disruptive: q.disruptive ?? false, reboot });
        });
      } finally {
        // Before replying: a client that sees the answer sees no leftover staged chunks.
        await discardStaged(ctx.db, staged.stagingKey);
      }
      return reply.code(outcome.created ? 201 : 200).send(outcome.artifact);
    },
  );

  app.get('/api/v1/artifacts', { schema: { tags, operationId: 'listArtifacts', summary: 'Published artifacts, by component', querystring: ArtifactListQuery, response: { 200: z.array(ArtifactView) } } }, async (req) =>
    listArtifacts(ctx.db, req.query),
  );

  app.get('/api/v1/artifacts/:id', { schema: { tags, operationId: 'getArtifact', summary: 'One artifact: version, kind, digest, signature, lifecycle', params: IdParam, response: { 200: ArtifactView } } }, async (req) =>
    mustFindArtifact(ctx, req.params.id),
  );

  // People only (viewer+); agents download through GET /api/v1/agent/artifacts/:id/blob.
  app.get(
    '/api/v1/artifacts/:id/blob',
    { schema: { tags, operationId: 'getArtifactBlob', params: IdParam, summary: 'The artifact bytes, streamed from the database', response: { 200: TextBody('the artifact bytes', 'application/octet-stream') } } },
    async (req, reply) => sendArtifactBlob(ctx, reply, req.params.id),
  );

  for (const action of LIFECYCLE_ACTIONS) {
    app.post(
      `/api/v1/artifacts/:id/${action}`,
      { schema: { tags, operationId: `${action}Artifact`, params: IdParam, response: { 200: ArtifactView }, summary: `Lifecycle: ${action} (draft → blessed → live → archived)` } },
      async (req) => {
        const artifact = await mustFindArtifact(ctx, req.params.id);
        const step = lifecycleStep(artifact.lifecycle, action);
        if (step.kind === 'invalid') throw errors.lifecycleTransition(artifact.id, step.from, action, step.allowedFrom);
        if (step.kind === 'unchanged') return artifact;
        if (action === 'bless' && artifact.signature === null) throw errors.artifactUnsigned(artifact.id);
        await ctx.db.transaction(async (tx) => {
          const lifecycle = await lockArtifact(tx, artifact.id, action === 'archive' ? 'update' : 'share');
          if (lifecycle !== step.from) throw errors.lifecycleTransition(artifact.id, lifecycle ?? 'gone', action, [step.from]);
          if (action === 'archive') {
            const users = await nodesUsingVersion(tx, artifact.component, artifact.version);
            // node_components.previous_version only remembers the last change; a rollout's tasks
            // remember what its rollback returns to, for as long as it can be rolled back.
            const rollouts = await rolloutsNeedingVersion(tx, artifact.component, artifact.version, ROLLBACK_CAPABLE_STATUSES, TASK_STATES_NEEDING_FROM_VERSION);
            if (rollouts.length > 0) throw rolloutErrors.artifactNeededForRollback(artifact.id, artifact.version, rollouts, users);
            if (users.length > 0) throw errors.artifactInUse(artifact.id, users);
          }
          const { demoted } = await setLifecycle(tx, artifact.id, step.from, step.to);
          const data = { artifact_id: artifact.id, component: artifact.component, version: artifact.version, from: step.from, to: step.to };
          await appendEvents(tx, [
            { kind: EVENT_OF[action], actor: actorOf(req), data },
            ...demoted.map((id) => ({ kind: EVENT.artifact.demoted, actor: actorOf(req), data: { artifact_id: id, component: artifact.component, replaced_by: artifact.id } })),
          ]);
        });
        return mustFindArtifact(ctx, artifact.id);
      },
    );
  }
}
