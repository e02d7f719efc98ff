import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { findArtifactByVersion, lockArtifact } from '../../store/artifacts.js';
import { appendEvents } from '../../store/events.js';
import { desiredComponentsForNode, findNodeComponent, setNodeComponent } from '../../store/node-components.js';
import { bumpGenerations } from '../../store/nodes.js';
import type { OperatorContext } from '../context.js';
import { errors } from '../errors.js';
import { actorOf } from '../request-actor.js';
import { IdParam, NodeComponentParams, SetVersionBody } from '../schemas.js';
import { NodeComponentSetView, NodeComponentsView } from '../response-views.js';
import { mustFindNode } from './nodes.js';
import { EVENT } from '../../domain/events.js';

export async function nodeComponentRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['nodes'];

  app.get('/api/v1/nodes/:id/components', { schema: { tags, operationId: 'getNodeComponents', params: IdParam, summary: 'The desired component versions of a node', response: { 200: NodeComponentsView } } }, async (req) => {
    const node = await mustFindNode(ctx, req.params.id);
    return desiredComponentsForNode(ctx.db, node.id);
  });

  app.put(
    '/api/v1/nodes/:id/components/:component',
    { schema: { tags, operationId: 'setNodeComponentVersion', params: NodeComponentParams, body: SetVersionBody, summary: 'Set the version of one component the node should run', response: { 200: NodeComponentSetView } } },
    async (req) => {
      const node = await mustFindNode(ctx, req.params.id);
      const { component } = req.params;
      const { version, force = false, rollback = false, prestage = false } = req.body;
      const artifact = await findArtifactByVersion(ctx.db, component, version);
      if (!artifact) throw errors.componentVersionNotFound(component, version);
      if (artifact.lifecycle === 'archived') throw errors.artifactArchived(component, version);
      // Installing a disruptive component stops what runs on the node: it must be empty first.
      // Pre-staging stops nothing: only the install itself waits for the drain.
      if (artifact.disruptive && node.active_instances > 0 && !force && !prestage) throw errors.nodeNotDrained(node.hostname, component, node.active_instances);

      const current = await findNodeComponent(ctx.db, node.id, component);
      const unchanged = current?.version === version && current.rollback === rollback && current.force === force && current.prestage === prestage;
      if (!unchanged) {
        const running = node.components[component];
        // The version a rollback returns to: what the node runs now, or what it was to return to before.
        const previousVersion = running !== undefined && running !== version ? running : (current?.previous_version ?? null);
        await ctx.db.transaction(async (tx) => {
          const lifecycle = await lockArtifact(tx, artifact.id, 'share');
          if (lifecycle === undefined || lifecycle === 'archived') throw errors.artifactArchived(component, version);
          await setNodeComponent(tx, { nodeId: node.id, component, version, artifactId: artifact.id, previousVersion, rollback, force, prestage, updatedBy: actorOf(req) });
          await bumpGenerations(tx, [node.id]);
          await appendEvents(tx, [
            {
              kind: EVENT.node.component_version_set,
              actor: actorOf(req),
              nodeId: node.id,
              data: { hostname: node.hostname, component, version, artifact_id: artifact.id, previous_version: previousVersion, rollback, force, ...(prestage ? { prestage: true as const } : {}) },
            },
          ]);
        });
        ctx.waiters.wake([node.id]);
      }
      const row = await findNodeComponent(ctx.db, node.id, component);
      return { ...row, hostname: node.hostname, desired: (await desiredComponentsForNode(ctx.db, node.id))[component] };
    },
  );
}
