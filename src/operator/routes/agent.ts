import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { DesiredState } from '../../domain/protocol.js';
import type { Db } from '../../store/db.js';
import { desiredInstancesForNode } from '../../store/instances.js';
import { desiredComponentsForNode } from '../../store/node-components.js';
import { nodeCredentialHash } from '../../store/nodes.js';
import { agentErrors } from '../agent-errors.js';
import type { OperatorContext } from '../context.js';
import { errors } from '../errors.js';
import { DesiredQuery, HeartbeatBody, IdParam, RegisterBody } from '../schemas.js';
import { NODE_CREDENTIAL_HEADER } from '../../domain/protocol.js';
import { sendArtifactBlob } from './artifacts.js';
import { registerAgent } from './agent-register.js';

/** The full desired state of one node; every reply carries all of it (DESIGN.md §7). */
export async function loadDesiredState(db: Db, nodeId: string): Promise<DesiredState | undefined> {
  const [node] = await db.query<{ generation: string; draining: boolean }>(
    `SELECT n.generation, coalesce(d.state IN ('running', 'blocked'), false) AS draining
       FROM nodes n LEFT JOIN drains d ON d.node_id = n.id WHERE n.id = $1`,
    [nodeId],
  );
  if (!node) return undefined;
  return {
    node_id: nodeId,
    generation: Number(node.generation),
    draining: node.draining,
    instances: await desiredInstancesForNode(db, nodeId),
    components: await desiredComponentsForNode(db, nodeId),
  };
}

const BlobQuery = z.object({
  node_id: z.string().min(1).max(200).refine((s) => !s.includes('\u0000'), 'no NUL bytes').describe('the downloading node (its credential comes in the header)'),
});

export async function agentRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['agent gateway'];
  // Role `agent` marks the gateway: only agent tokens pass here, and they pass nowhere else (auth.ts).
  const config = { role: 'agent' as const };

  /**
   * With auth on, an agent may only report for its own node (DESIGN.md §9): the credential it
   * got at registration must come with every heartbeat, long-poll and download. A wrong one is
   * refused (403) without touching anything; the agent registers again.
   */
  const assertNodeCredential = async (nodeId: string, presented: string | string[] | undefined) => {
    if (!ctx.tokens) return;
    const stored = await nodeCredentialHash(ctx.db, nodeId);
    if (stored === undefined) throw errors.nodeNotRegistered(nodeId);
    const given = createHash('sha256').update(typeof presented === 'string' ? presented : '').digest();
    if (stored === null || !timingSafeEqual(Buffer.from(stored, 'hex'), given)) throw errors.nodeCredentialInvalid(nodeId);
  };

  app.post('/api/v1/agent/register', { config, schema: { tags, body: RegisterBody } }, async (req) => {
    const presented = req.headers[NODE_CREDENTIAL_HEADER];
    const { nodeId, credential } = await registerAgent(ctx, req.body, {
      actor: req.principal?.name ?? 'agent',
      presented: typeof presented === 'string' ? presented : undefined,
    });
    ctx.reconciler.wake();
    return { node_id: nodeId, heartbeat_interval_ms: ctx.settings.heartbeatIntervalMs, node_credential: credential };
  });

  app.post('/api/v1/agent/heartbeat', { config, schema: { tags, body: HeartbeatBody } }, async (req) => {
    const body = req.body;
    await assertNodeCredential(body.node_id, req.headers[NODE_CREDENTIAL_HEADER]);
    ctx.metrics.heartbeats.inc();
    await ctx.heartbeats.add({
      nodeId: body.node_id,
      agentVersion: body.agent_version,
      protocolVersion: body.protocol_version,
      components: body.components,
      instances: body.instances,
      ...(body.installs ? { installs: body.installs } : {}),
    });
    const desired = await loadDesiredState(ctx.db, body.node_id);
    if (!desired) throw errors.nodeNotRegistered(body.node_id);
    return desired;
  });

  // Long-poll: held open until the node's desired generation moves past `after`.
  app.get('/api/v1/agent/desired', { config, schema: { tags, querystring: DesiredQuery } }, async (req) => {
    const { node_id: nodeId, after, wait } = req.query;
    await assertNodeCredential(nodeId, req.headers[NODE_CREDENTIAL_HEADER]);
    const deadline = Date.now() + wait * 1000;
    const closed = new AbortController();
    req.raw.once('close', () => closed.abort());
    for (;;) {
      const desired = await loadDesiredState(ctx.db, nodeId);
      if (!desired) throw errors.nodeNotRegistered(nodeId);
      const remaining = deadline - Date.now();
      if (desired.generation > after || remaining <= 0 || closed.signal.aborted) return desired;
      await ctx.waiters.wait(nodeId, remaining, closed.signal);
    }
  });

  // An agent downloads only what its own node should install: the desired state's `url` points here.
  app.get(
    '/api/v1/agent/artifacts/:id/blob',
    { config, schema: { tags, params: IdParam, querystring: BlobQuery, summary: 'Artifact bytes for a node that should install them (streamed)' } },
    async (req, reply) => {
      const nodeId = req.query.node_id;
      await assertNodeCredential(nodeId, req.headers[NODE_CREDENTIAL_HEADER]);
      const desired = await desiredComponentsForNode(ctx.db, nodeId);
      if (!Object.values(desired).some((c) => c.artifact_id === req.params.id)) throw agentErrors.artifactNotDesired(req.params.id, nodeId);
      return sendArtifactBlob(ctx, reply, req.params.id);
    },
  );
}
