import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { chooseMigrationTarget } from '../../domain/migration.js';
import { chooseMigrationMode, MIGRATION_DEFAULTS } from '../../domain/instance-migration.js';
import { insertMigrations } from '../../store/instance-migrations.js';
import { appendEvents } from '../../store/events.js';
import { sqlState } from '../../store/db.js';
import { loadScopeSnapshot } from '../../store/fleet-snapshot.js';
import { findDeployment } from '../../store/deployments.js';
import { findInstance, insertPlacedInstances, listInstances, reportActivity, reportVolume } from '../../store/instances.js';
import { bumpGenerations } from '../../store/nodes.js';
import type { OperatorContext } from '../context.js';
import { errors } from '../errors.js';
import { actorOf } from '../request-actor.js';
import { ActivityReportBody, IdParam, InstanceListQuery, InstanceView, MigrateBody, VolumeReportBody } from '../schemas.js';
import { InstanceHealthView, MigrationStarted } from '../response-views.js';
import { mustFindNode } from './nodes.js';
import { EVENT } from '../../domain/events.js';

export async function instanceRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['instances'];
  const mustFindInstance = async (id: string) => {
    const instance = await findInstance(ctx.db, id);
    if (!instance) throw errors.instanceNotFound(id, 'list instances with GET /api/v1/instances (`drydock instances`)');
    return instance;
  };

  app.get('/api/v1/instances', { schema: { tags, operationId: 'listInstances', summary: 'Instances, by node or deployment', querystring: InstanceListQuery, response: { 200: z.array(InstanceView) } } }, async (req) => {
    const nodeId = req.query.node ? (await mustFindNode(ctx, req.query.node)).id : undefined;
    let deploymentId: string | undefined;
    if (req.query.deployment) {
      const deployment = await findDeployment(ctx.db, req.query.deployment);
      if (!deployment) throw errors.deploymentNotFound(req.query.deployment, 'list deployments with GET /api/v1/deployments');
      deploymentId = deployment.id;
    }
    return listInstances(ctx.db, { nodeId, deploymentId });
  });

  app.get('/api/v1/instances/:id', { schema: { tags, operationId: 'getInstance', summary: 'One instance', params: IdParam, response: { 200: InstanceView } } }, async (req) =>
    mustFindInstance(req.params.id),
  );

  app.get('/api/v1/instances/:id/health', { schema: { tags, operationId: 'getInstanceHealth', summary: "The instance's last reported health", params: IdParam, response: { 200: InstanceHealthView } } }, async (req) => {
    const instance = await mustFindInstance(req.params.id);
    return {
      instance_id: instance.id,
      status: instance.healthy ? 'healthy' : 'unhealthy',
      healthy: instance.healthy,
      state: instance.status,
      node_id: instance.node_id,
      url: instance.url,
      checked_at: instance.updated_at,
      message: instance.message,
    };
  });

  // Storage and backup systems feed preflight (volume-last-replica, backup-in-progress) through
  // these; each report expires, so one nobody renews stops blocking plans by itself.
  const config = { role: 'operator' } as const;
  app.put(
    '/api/v1/instances/:id/volume',
    { config, schema: { tags, operationId: 'reportInstanceVolume', params: IdParam, body: VolumeReportBody, summary: "Report an instance's volume replica health (preflight: volume-last-replica)", response: { 200: InstanceView } } },
    async (req) => {
      const { replicas, healthy_replicas: healthy, expires_in: expiresIn } = req.body;
      if (!(await reportVolume(ctx.db, req.params.id, { replicas, healthy_replicas: healthy }, expiresIn ?? 10 * 60_000))) throw errors.instanceNotFound(req.params.id, 'list instances with GET /api/v1/instances');
      return mustFindInstance(req.params.id);
    },
  );
  app.delete('/api/v1/instances/:id/volume', { config, schema: { tags, operationId: 'clearInstanceVolume', params: IdParam, summary: 'Clear the volume report', response: { 200: InstanceView } } }, async (req) => {
    if (!(await reportVolume(ctx.db, req.params.id, null, 0))) throw errors.instanceNotFound(req.params.id, 'list instances with GET /api/v1/instances');
    return mustFindInstance(req.params.id);
  });
  app.put(
    '/api/v1/instances/:id/activity',
    { config, schema: { tags, operationId: 'reportInstanceActivity', params: IdParam, body: ActivityReportBody, summary: 'Report a backup, snapshot or restore running on the instance (preflight: backup-in-progress)', response: { 200: InstanceView } } },
    async (req) => {
      if (!(await reportActivity(ctx.db, req.params.id, req.body.activity, req.body.expires_in ?? 60 * 60_000))) throw errors.instanceNotFound(req.params.id, 'list instances with GET /api/v1/instances');
      return mustFindInstance(req.params.id);
    },
  );
  app.delete('/api/v1/instances/:id/activity', { config, schema: { tags, operationId: 'clearInstanceActivity', params: IdParam, summary: 'Clear the activity report (it finished)', response: { 200: InstanceView } } }, async (req) => {
    if (!(await reportActivity(ctx.db, req.params.id, null, 0))) throw errors.instanceNotFound(req.params.id, 'list instances with GET /api/v1/instances');
    return mustFindInstance(req.params.id);
  });

  app.post(
    '/api/v1/instances/:id/migrate',
    { schema: { tags, operationId: 'migrateInstance', params: IdParam, body: MigrateBody, summary: 'Move one instance make-before-break', response: { 202: MigrationStarted } } },
    async (req, reply) => {
      const view = await mustFindInstance(req.params.id);
      const targetNodeId = req.body?.target_node ? (await mustFindNode(ctx, req.body.target_node)).id : undefined;
      // The instance's deployment, the nodes with room and the named target: not the whole fleet.
      const snapshot = await loadScopeSnapshot(ctx.db, {
        deploymentIds: [view.deployment_id],
        drainNodeIds: [],
        candidates: true,
        nodeIds: targetNodeId ? [targetNodeId] : [],
      });
      const instance = snapshot.instances.find((i) => i.id === view.id);
      const deployment = snapshot.deployments.find((d) => d.id === view.deployment_id);
      if (!instance || !deployment) throw errors.instanceNotFound(view.id, 'it was removed meanwhile');
      const choice = chooseMigrationTarget(
        instance,
        deployment,
        snapshot.nodes,
        snapshot.instances,
        { targetNodeId, force: req.body?.force },
        snapshot.load,
      );
      if (!choice.ok) {
        switch (choice.error) {
          case 'not_running':
            throw errors.instanceNotRunning(view.id);
          case 'in_progress':
            throw errors.migrationInProgress(view.id, choice.replacement ?? '');
          case 'pinned':
            throw errors.instancePinned(view.id);
          case 'target_invalid':
            throw errors.targetInvalid(choice.reason, req.body?.target_node ?? '');
          case 'no_capacity':
            throw errors.noCapacity(view.id);
        }
      }
      const chosen = chooseMigrationMode(deployment.workload, req.body?.mode);
      if (!chosen.ok) throw errors.liveMoveUnsupported(view.id, deployment.workload.driver ?? 'process');
      const { mode } = chosen;
      const replacementId = ctx.newId();
      const migrationId = ctx.newId();
      await ctx.db.transaction(async (tx) => {
        // Written as the reconciler writes its placements: only while the target is still ready,
        // and never beside another open migration of the instance (both may have changed since the
        // check above).
        let placed: number;
        try {
          placed = await insertPlacedInstances(tx, [{ id: replacementId, deploymentId: deployment.id, nodeId: choice.target.id, replaces: instance.id }]);
        } catch (error) {
          if (sqlState(error) === '23505') throw errors.migrationInProgress(view.id, '', error);
          throw error;
        }
        if (placed === 0) throw errors.targetInvalid('the node stopped taking instances meanwhile (cordoned, draining or down)', choice.target.id);
        await insertMigrations(tx, [
          {
            id: migrationId,
            instanceId: instance.id,
            deploymentId: deployment.id,
            sourceNodeId: instance.nodeId,
            targetNodeId: choice.target.id,
            targetInstanceId: replacementId,
            mode,
            trigger: 'manual',
            downtimeLimitMs: req.body?.downtime_limit_ms ?? MIGRATION_DEFAULTS.downtimeLimitMs,
            deadlineMs: req.body?.deadline ?? MIGRATION_DEFAULTS.deadlineMs,
          },
        ]);
        await bumpGenerations(tx, [choice.target.id]);
        await appendEvents(tx, [
          {
            kind: EVENT.instance.migration_started,
            actor: actorOf(req),
            nodeId: instance.nodeId,
            instanceId: instance.id,
            data: {
              from_node: instance.nodeId,
              to_node: choice.target.id,
              replacement: replacementId,
              reason: 'manual',
              force: req.body?.force ?? false,
              migration_id: migrationId,
              mode,
            },
          },
        ]);
      });
      ctx.waiters.wake([choice.target.id]);
      ctx.reconciler.deploymentsChanged([deployment.id]);
      ctx.migrations.wake();
      return reply.code(202).send({
        instance_id: instance.id,
        replacement_id: replacementId,
        migration_id: migrationId,
        mode,
        from_node: instance.nodeId,
        to_node: choice.target.id,
        to_hostname: choice.target.hostname,
        status: 'migrating',
      });
    },
  );
}
