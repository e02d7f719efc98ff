import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { planDrain, placementState } from '../../domain/placement.js';
import { deploymentsOnNodes, loadScopeSnapshot } from '../../store/fleet-snapshot.js';
import { listInstances } from '../../store/instances.js';
import { beginDrain, cordonNode, enableNode } from '../../store/node-actions.js';
import { appendEvents } from '../../store/events.js';
import { clearNodeCredential, findNode, fleetSummary, listNodes, type NodeView } from '../../store/nodes.js';
import type { OperatorContext } from '../context.js';
import { errors } from '../errors.js';
import { actorOf } from '../request-actor.js';
import { DrainBody, FleetSummaryView, IdParam, InstanceView, NodeFilterQuery, NodeListQuery, NodeView as NodeViewSchema } from '../schemas.js';
import { EVENT } from '../../domain/events.js';
import { decommissionRefusal } from '../../domain/node-decommission.js';
import { decommissionNode, lockDecommissionFacts } from '../../store/node-decommission.js';
import { fleetChangeErrors } from '../fleet-change-errors.js';

const DecommissionedView = z.object({
  id: z.string(),
  hostname: z.string(),
  region: z.string(),
  decommissioned_by: z.string(),
  result: z.literal('deleted'),
});

const ReEnrollBody = z
  .object({ reason: z.string().max(500).refine((s) => !s.includes('\u0000'), 'no NUL bytes').optional().describe('why, for the event log') })
  .strict()
  .nullable()
  .optional();

export async function mustFindNode(ctx: OperatorContext, idOrHostname: string): Promise<NodeView> {
  const node = await findNode(ctx.db, idOrHostname);
  if (!node) throw errors.nodeNotFound(idOrHostname, 'list nodes with GET /api/v1/nodes (`drydock nodes`)');
  return node;
}

export async function nodeRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['nodes'];
  const params = IdParam.describe('node id or hostname');

  app.get('/api/v1/nodes', { schema: { tags, operationId: 'listNodes', summary: 'Nodes with status, capacity, components and drain', querystring: NodeListQuery, response: { 200: z.array(NodeViewSchema) } } }, async (req) =>
    listNodes(ctx.db, req.query),
  );

  // Counts for a view that needs no rows (the dashboard's fleet summary and filter choices): a few
  // hundred bytes where the list of 1,000 nodes is half a megabyte.
  app.get(
    '/api/v1/fleet/summary',
    { schema: { tags, operationId: 'getFleetSummary', summary: 'Node counts by status and region, instances, and the roles and versions in the fleet', querystring: NodeFilterQuery, response: { 200: FleetSummaryView } } },
    async (req) => fleetSummary(ctx.db, req.query),
  );

  app.get('/api/v1/nodes/:id', { schema: { tags, operationId: 'getNode', summary: 'One node, by id or hostname', params, response: { 200: NodeViewSchema } } }, async (req) =>
    mustFindNode(ctx, req.params.id),
  );

  app.get('/api/v1/nodes/:id/instances', { schema: { tags, operationId: 'listNodeInstances', summary: 'Instances on the node', params, response: { 200: z.array(InstanceView) } } }, async (req) => {
    const node = await mustFindNode(ctx, req.params.id);
    return listInstances(ctx.db, { nodeId: node.id });
  });

  app.post('/api/v1/nodes/:id/cordon', { schema: { tags, operationId: 'cordonNode', params, summary: 'Stop placing new instances on the node', response: { 200: NodeViewSchema } } }, async (req) => {
    const node = await mustFindNode(ctx, req.params.id);
    await ctx.db.transaction((tx) => cordonNode(tx, node, { actor: actorOf(req) }));
    return mustFindNode(ctx, node.id);
  });

  const enable = async (id: string, actor: string) => {
    const node = await mustFindNode(ctx, id);
    if (!node.cordoned && !node.drain) return node;
    await ctx.db.transaction((tx) => enableNode(tx, node, { actor }));
    // The drain flag (and any parked instance) is desired state: the agent's long-poll returns now.
    ctx.waiters.wake([node.id]);
    ctx.reconciler.nodesChanged([node.id]);
    return mustFindNode(ctx, node.id);
  };
  const enableSchema = { tags, params, summary: 'Uncordon: end any drain, place instances again, restart parked pinned instances', response: { 200: NodeViewSchema } };
  app.post('/api/v1/nodes/:id/enable', { schema: { ...enableSchema, operationId: 'enableNode' } }, async (req) => enable(req.params.id, actorOf(req)));
  app.post('/api/v1/nodes/:id/uncordon', { schema: { ...enableSchema, operationId: 'uncordonNode' } }, async (req) => enable(req.params.id, actorOf(req)));

  // Admin only: the node's credential is void at once (its agent can no longer report), and the
  // next registration of its hostname with the agent token enrolls it again (DESIGN.md §9).
  app.post(
    '/api/v1/nodes/:id/re-enroll',
    { config: { role: 'admin' }, schema: { tags, operationId: 'reEnrollNode', params, body: ReEnrollBody, summary: "Void the node's credential so its next registration enrolls it again", response: { 200: NodeViewSchema } } },
    async (req) => {
      const node = await mustFindNode(ctx, req.params.id);
      await ctx.db.transaction(async (tx) => {
        await clearNodeCredential(tx, node.id);
        await appendEvents(tx, [
          { kind: EVENT.node.re_enrolled, actor: actorOf(req), nodeId: node.id, data: { hostname: node.hostname, reason: req.body?.reason ?? null } },
        ]);
      });
      // Refused at once on this replica; other replicas refuse its next heartbeat (credential-cache.ts).
      ctx.credentials.forget(node.id);
      return mustFindNode(ctx, node.id);
    },
  );

  // Decommission (DESIGN.md §6): only a node that runs nothing and is no rollout's leaves the
  // fleet (domain/node-decommission.ts says why each refusal). Its row goes; a tombstone keeps its
  // agent out (NODE_DECOMMISSIONED on heartbeat, long-poll and registration).
  app.delete(
    '/api/v1/nodes/:id',
    { schema: { tags, operationId: 'deleteNode', params, summary: 'Decommission a cordoned, drained node: it leaves the fleet and its agent is refused', response: { 200: DecommissionedView } } },
    async (req) => {
      const node = await mustFindNode(ctx, req.params.id);
      const actor = actorOf(req);
      await ctx.db.transaction(async (tx) => {
        const facts = await lockDecommissionFacts(tx, node.id);
        if (!facts) throw errors.nodeNotFound(req.params.id, 'list nodes with GET /api/v1/nodes (`drydock nodes`)');
        const refusal = decommissionRefusal(facts);
        if (refusal) throw fleetChangeErrors.nodeNotDecommissionable(facts.hostname, refusal);
        await decommissionNode(tx, facts, actor);
        await appendEvents(tx, [{ kind: EVENT.node.decommissioned, actor, nodeId: node.id, data: { hostname: facts.hostname, region: facts.region } }]);
      });
      // Refused at once here (other replicas: at their cache's next look), and a held long-poll returns to be refused.
      ctx.credentials.forget(node.id);
      ctx.waiters.wake([node.id]);
      ctx.reconciler.nodesTouched([node.id]);
      return { id: node.id, hostname: node.hostname, region: node.region, decommissioned_by: actor, result: 'deleted' as const };
    },
  );

  app.post(
    '/api/v1/nodes/:id/drain',
    { schema: { tags, operationId: 'drainNode', params, body: DrainBody, summary: 'Cordon, then move every instance off the node (make-before-break)', response: { 202: NodeViewSchema } } },
    async (req, reply) => {
      const node = await mustFindNode(ctx, req.params.id);
      if (node.status === 'down') throw errors.nodeDown(node.hostname);
      const force = req.body?.force ?? false;
      const timeoutMs = req.body?.timeout ?? ctx.settings.drainTimeoutMs;
      // A drain that cannot fit what it must move fails before it changes anything.
      // The node's deployments and the nodes with room, not the whole fleet; a node that hosts
      // nothing has nothing to place, so no node with room is read (every node of a large fleet).
      const deploymentIds = await deploymentsOnNodes(ctx.db, [node.id]);
      const snapshot = await loadScopeSnapshot(ctx.db, { deploymentIds, drainNodeIds: [node.id], candidates: deploymentIds.length > 0 });
      const state = { ...placementState(snapshot.instances), load: new Map(snapshot.load) };
      const plan = planDrain(node.id, snapshot.nodes, snapshot.instances, new Map(snapshot.deployments.map((d) => [d.id, d])), state);
      if (plan.unplaceable.length > 0) throw errors.drainCannotFit(plan.unplaceable);
      await ctx.db.transaction((tx) =>
        beginDrain(tx, node, { force, timeoutMs, details: { moves: plan.moves.length, pinned: plan.pinned } }, { actor: actorOf(req) }),
      );
      ctx.waiters.wake([node.id]);
      ctx.reconciler.nodesChanged([node.id]);
      return reply.code(202).send(await mustFindNode(ctx, node.id));
    },
  );
}
