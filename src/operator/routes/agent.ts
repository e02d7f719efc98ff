import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { desiredComponentsForNode } from '../../store/node-components.js';
import { nodeHostsImage } from '../../store/desired-state.js';
import { recordHookReports } from '../../store/hook-runs.js';
import { agentErrors } from '../agent-errors.js';
import type { OperatorContext } from '../context.js';
import { credentialDigest } from '../credential-cache.js';
import { errors } from '../errors.js';
import { DesiredQuery, HeartbeatBody, IdParam, RegisterBody } from '../schemas.js';
import { DesiredStateView, RegisterReply, TextBody } from '../response-views.js';
import { NODE_CREDENTIAL_HEADER } from '../../domain/protocol.js';
import { sendArtifactBlob } from './artifacts.js';
import { registerAgent } from './agent-register.js';
import { findDecommissionedNode } from '../../store/node-decommission.js';
import { fleetChangeErrors } from '../fleet-change-errors.js';

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
   * refused (403) without touching anything; the agent registers again. Digests are cached
   * (credential-cache.ts says for how long and why that is safe).
   */
  const assertNodeCredential = async (nodeId: string, presented: string | string[] | undefined) => {
    if (!ctx.tokens) return;
    const check = await ctx.credentials.check(nodeId, presented);
    if (check === 'unknown-node') throw await unknownNode(nodeId);
    if (check === 'invalid') throw errors.nodeCredentialInvalid(nodeId);
  };
  /**
   * A node the operator does not know: deleted from the fleet (410, and its agent must not
   * register it again behind the person who deleted it) or never registered (404: register).
   */
  const unknownNode = async (nodeId: string) => {
    const gone = await findDecommissionedNode(ctx.db, nodeId);
    return gone ? fleetChangeErrors.nodeDecommissioned(gone.id, gone.hostname, gone.decommissioned_by, gone.decommissioned_at) : errors.nodeNotRegistered(nodeId);
  };

  app.post('/api/v1/agent/register', { config, schema: { tags, operationId: 'registerAgent', summary: "Register the agent's node (or its return); answers the node id and credential", body: RegisterBody, response: { 200: RegisterReply } } }, async (req) => {
    const presented = req.headers[NODE_CREDENTIAL_HEADER];
    // The agent of a deleted node keeps its id: it is refused rather than enrolled again.
    // (A machine enrolls as a new node once its agent-state.json is removed.)
    if (req.body.node_id !== undefined) {
      const gone = await findDecommissionedNode(ctx.db, req.body.node_id);
      if (gone) throw fleetChangeErrors.nodeDecommissioned(gone.id, gone.hostname, gone.decommissioned_by, gone.decommissioned_at);
    }
    const { nodeId, credential } = await registerAgent(ctx, req.body, {
      actor: req.principal?.name ?? 'agent',
      presented: typeof presented === 'string' ? presented : undefined,
    });
    // The node's credential may have changed just now: the cache holds the new one.
    ctx.credentials.confirm(nodeId, credentialDigest(credential));
    // Judged by the next liveness pass (a node back after a restart); what it hosts did not change.
    ctx.reconciler.nodesTouched([nodeId]);
    return { node_id: nodeId, heartbeat_interval_ms: ctx.settings.heartbeatIntervalMs, node_credential: credential };
  });

  // The common path costs one batched write and no read (DESIGN.md §13): the write checks the
  // credential (a wrong one changes no row) and returns the node's generation, and the desired state at that generation
  // comes from memory unless it moved.
  app.post('/api/v1/agent/heartbeat', { config, schema: { tags, operationId: 'agentHeartbeat', summary: "Report the node's instances, components and installs; answers its desired state", body: HeartbeatBody, response: { 200: DesiredStateView } } }, async (req, reply) => {
    // Liveness counts from arrival (issue 9): fastify's clock for this reply started when the
    // request arrived, before hooks, body parsing and every queue of ours.
    const arrivedAt = performance.now() - reply.elapsedTime;
    const body = req.body;
    const presented = req.headers[NODE_CREDENTIAL_HEADER];
    const credentialHash = ctx.tokens ? credentialDigest(presented) : undefined;
    const record = {
      nodeId: body.node_id,
      arrivedAt,
      agentVersion: body.agent_version,
      protocolVersion: body.protocol_version,
      components: body.components,
      instances: body.instances,
      observedGeneration: body.generation,
      ...(body.installs ? { installs: body.installs } : {}),
      ...(body.slots ? { slots: body.slots } : {}),
      ...(credentialHash ? { credentialHash } : {}),
    };
    let generation = await ctx.heartbeats.add(record);
    if (generation === undefined && ctx.tokens) {
      // Not written: find out why from the database (this is the uncommon path).
      ctx.credentials.forget(body.node_id);
      await assertNodeCredential(body.node_id, presented);
      // The credential is right after all (registered between the write and now): write again.
      generation = await ctx.heartbeats.add(record);
    }
    if (generation === undefined) throw await unknownNode(body.node_id);
    if (credentialHash) ctx.credentials.confirm(body.node_id, credentialHash);
    ctx.metrics.heartbeats.inc();
    const written = generation;
    // Until this reply is sent the agent waits on the operator: that is not its silence.
    return ctx.heartbeats.answering(body.node_id, async () => {
      // Hook runs (rare: only while a node's hooks run): recorded after the heartbeat proved the
      // node, each step once; a finished run leaves the desired state and its rollout looks again.
      if (body.hooks && body.hooks.length > 0) {
        const recorded = await recordHookReports(ctx.db, body.node_id, body.hooks);
        for (const rolloutId of recorded.rollouts) ctx.rollouts.wake(rolloutId);
        if (recorded.desiredChanged) {
          ctx.waiters.wake([body.node_id]);
          const current = await ctx.desired.current(body.node_id);
          if (current) return current;
        }
      }
      const desired = await ctx.desired.atLeast(body.node_id, written);
      if (!desired) throw await unknownNode(body.node_id);
      return desired;
    });
  });

  // Long-poll: held open until the node's desired generation moves past `after`.
  app.get('/api/v1/agent/desired', { config: { ...config, longPoll: true }, schema: { tags, operationId: 'getDesiredState', summary: 'Long-poll: the desired state once its generation passes ?after=', querystring: DesiredQuery, response: { 200: DesiredStateView } } }, async (req) => {
    const { node_id: nodeId, after, wait } = req.query;
    await assertNodeCredential(nodeId, req.headers[NODE_CREDENTIAL_HEADER]);
    const deadline = Date.now() + wait * 1000;
    const closed = new AbortController();
    req.raw.once('close', () => closed.abort());
    for (;;) {
      const desired = await ctx.desired.current(nodeId);
      if (!desired) throw await unknownNode(nodeId);
      const remaining = deadline - Date.now();
      if (desired.generation > after || remaining <= 0 || closed.signal.aborted) return desired;
      await ctx.waiters.wait(nodeId, remaining, closed.signal, desired.generation);
    }
  });

  // An agent downloads only what its own node should install or boot: the desired state's `url` points here.
  app.get(
    '/api/v1/agent/artifacts/:id/blob',
    { config, schema: { tags, operationId: 'getAgentArtifactBlob', params: IdParam, querystring: BlobQuery, summary: 'Artifact bytes for a node that should install them (streamed)', response: { 200: TextBody('the artifact bytes', 'application/octet-stream') } } },
    async (req, reply) => {
      const nodeId = req.query.node_id;
      await assertNodeCredential(nodeId, req.headers[NODE_CREDENTIAL_HEADER]);
      const desired = await desiredComponentsForNode(ctx.db, nodeId);
      const installs = Object.values(desired).some((c) => c.artifact_id === req.params.id);
      if (!installs && !(await nodeHostsImage(ctx.db, nodeId, req.params.id))) throw agentErrors.artifactNotDesired(req.params.id, nodeId);
      return sendArtifactBlob(ctx, reply, req.params.id);
    },
  );
}
