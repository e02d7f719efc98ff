import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { deploymentHealth } from '../../domain/deployment-health.js';
import {
  type DeploymentView,
  findDeployment,
  insertDeployment,
  listDeployments,
  lockDeploymentByName,
  markDeploymentDeleting,
  openMigrationsOfDeployment,
  updateDeploymentReplicas,
} from '../../store/deployments.js';
import type { Db } from '../../store/db.js';
import { type ApplyResult, diffDeployment } from '../../domain/deployment-apply.js';
import { fleetChangeErrors } from '../fleet-change-errors.js';
import { appendEvents } from '../../store/events.js';
import { listInstances } from '../../store/instances.js';
import type { OperatorContext } from '../context.js';
import { errors } from '../errors.js';
import { actorOf } from '../request-actor.js';
import { DeploymentSpec, DeploymentView as DeploymentViewSchema, Endpoint, IdParam, type WorkloadSchema } from '../schemas.js';
import { DeploymentHealthView } from '../response-views.js';
import { findArtifact, findArtifactByVersion } from '../../store/artifacts.js';
import type { Workload } from '../../domain/types.js';
import { EVENT } from '../../domain/events.js';

const AppliedView = z.object({
  result: z.enum(['created', 'configured', 'unchanged']).describe('like kubectl apply: created, configured (changed) or unchanged'),
  changed: z.array(z.string()).describe('the fields the apply changed (empty unless configured)'),
  deployment: DeploymentViewSchema,
});

type Spec = z.infer<typeof DeploymentSpec>;

function withHealth(d: DeploymentView) {
  return { ...d, health: deploymentHealth(d.replicas, d.min_available, d.healthy_instances) };
}

/**
 * A `vm` workload names its image as `<component>@<version>` or an artifact id; it must be a
 * signed `vm-image` that may still be installed. The id it resolves to is stored with it, so
 * every node boots the same bytes even if the name is ever reused.
 */
async function resolveWorkload(ctx: OperatorContext, workload: z.infer<typeof WorkloadSchema>): Promise<Workload> {
  if (workload.driver !== 'vm') return workload;
  const at = workload.image.lastIndexOf('@');
  const artifact =
    at > 0
      ? await findArtifactByVersion(ctx.db, workload.image.slice(0, at), workload.image.slice(at + 1))
      : await findArtifact(ctx.db, workload.image);
  if (!artifact) throw errors.vmImageInvalid(workload.image, 'is not a published artifact');
  if (artifact.kind !== 'vm-image') throw errors.vmImageInvalid(workload.image, `is an artifact of kind ${artifact.kind}, not vm-image`);
  if (artifact.signature === null) throw errors.vmImageInvalid(workload.image, 'is not signed');
  if (artifact.lifecycle === 'archived') throw errors.vmImageInvalid(workload.image, 'is archived');
  return { ...workload, image_artifact_id: artifact.id };
}

export async function deploymentRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['deployments'];
  const params = IdParam.describe('deployment id or name');
  const mustFind = async (id: string) => {
    const deployment = await findDeployment(ctx.db, id);
    if (!deployment) throw errors.deploymentNotFound(id, 'list deployments with GET /api/v1/deployments (`drydock deployments`)');
    return deployment;
  };

  app.get('/api/v1/deployments', { schema: { tags, operationId: 'listDeployments', summary: 'Deployments with their health', response: { 200: z.array(DeploymentViewSchema) } } }, async () =>
    (await listDeployments(ctx.db)).map(withHealth),
  );

  app.get('/api/v1/deployments/active', { schema: { tags, operationId: 'listActiveDeployments', summary: 'Deployments with at least one instance wanted', response: { 200: z.array(DeploymentViewSchema) } } }, async () =>
    (await listDeployments(ctx.db)).filter((d) => d.replicas > 0).map(withHealth),
  );

  app.post(
    '/api/v1/deployments',
    { schema: { tags, operationId: 'createDeployment', body: DeploymentSpec, response: { 201: DeploymentViewSchema }, summary: 'Create a deployment; instances are placed at once' } },
    async (req, reply) => {
      const id = ctx.newId();
      const workload = await resolveWorkload(ctx, req.body.workload);
      await ctx.db.transaction(async (tx) => {
        if (!(await insertDeployment(tx, id, { ...req.body, workload }))) throw errors.deploymentExists(req.body.name);
        await appendEvents(tx, [
          { kind: EVENT.deployment.created, actor: actorOf(req), data: { deployment_id: id, name: req.body.name, replicas: req.body.replicas } },
        ]);
      });
      ctx.reconciler.deploymentsChanged([id]);
      return reply.code(201).send(withHealth((await findDeployment(ctx.db, id)) as DeploymentView));
    },
  );

  /**
   * Create or update by name, in one transaction holding the deployment's row: an unchanged
   * spec writes nothing (no event, no generation bump); a change is checked by
   * domain/deployment-apply.ts first, so a refused apply changes nothing.
   */
  const apply = async (tx: Db, spec: Spec & { workload: Workload }, actor: string): Promise<{ id: string; result: ApplyResult; changed: string[] }> => {
    const record = { ...spec, node_selector: spec.node_selector ?? null };
    for (let attempt = 0; ; attempt++) {
      const existing = await lockDeploymentByName(tx, spec.name);
      if (!existing) {
        const id = ctx.newId();
        if (await insertDeployment(tx, id, record)) {
          await appendEvents(tx, [{ kind: EVENT.deployment.created, actor, data: { deployment_id: id, name: spec.name, replicas: spec.replicas } }]);
          return { id, result: 'created', changed: [] };
        }
        // Created by a concurrent apply since the lookup: update that one instead (once).
        if (attempt > 0) throw fleetChangeErrors.deploymentDeleting(spec.name);
        continue;
      }
      if (existing.deleting) throw fleetChangeErrors.deploymentDeleting(spec.name);
      const stored = (await findDeployment(tx, existing.id)) as DeploymentView;
      const diff = diffDeployment(stored, record, existing.instances);
      const changed = Object.keys(diff.changes);
      if (changed.length === 0) return { id: existing.id, result: 'unchanged', changed };
      if (diff.fixed.length > 0) throw fleetChangeErrors.deploymentFieldImmutable(spec.name, diff.fixed, existing.instances);
      if (!(await updateDeploymentReplicas(tx, existing.id, record))) throw fleetChangeErrors.deploymentDeleting(spec.name);
      await appendEvents(tx, [{ kind: EVENT.deployment.updated, actor, data: { deployment_id: existing.id, name: spec.name, changes: diff.changes } }]);
      return { id: existing.id, result: 'configured', changed };
    }
  };

  app.put(
    '/api/v1/deployments/:id',
    {
      schema: {
        tags,
        operationId: 'applyDeployment',
        params: IdParam.describe('deployment name (the spec must carry the same name)'),
        body: DeploymentSpec,
        response: { 200: AppliedView, 201: AppliedView },
        summary: 'Apply a deployment spec: create it, or update replicas and min_available in place (unchanged: nothing written)',
      },
    },
    async (req, reply) => {
      if (req.body.name !== req.params.id) throw fleetChangeErrors.deploymentNameMismatch(req.params.id, req.body.name);
      const workload = await resolveWorkload(ctx, req.body.workload);
      const outcome = await ctx.db.transaction((tx) => apply(tx, { ...req.body, workload }, actorOf(req)));
      // Scale up or down: the deployment's reconciler places or stops instances (fleet-reconcile.ts).
      if (outcome.result !== 'unchanged') ctx.reconciler.deploymentsChanged([outcome.id]);
      const deployment = withHealth((await findDeployment(ctx.db, outcome.id)) as DeploymentView);
      return reply.code(outcome.result === 'created' ? 201 : 200).send({ result: outcome.result, changed: outcome.changed, deployment });
    },
  );

  // Deleting is asynchronous, like every fleet change: the deployment is marked, the fleet
  // reconciler withdraws and stops each instance the way it stops any (make-before-break does
  // not apply: nothing replaces them) and removes the deployment with its last instance row.
  // Refused while an instance is moving between nodes: a live move holds a guest on two nodes.
  app.delete(
    '/api/v1/deployments/:id',
    {
      schema: {
        tags,
        operationId: 'deleteDeployment',
        params,
        summary: 'Delete a deployment: its instances are withdrawn and stopped, then it is removed (202; repeat: no change)',
        response: { 202: DeploymentViewSchema },
      },
    },
    async (req, reply) => {
      const found = await mustFind(req.params.id);
      const actor = actorOf(req);
      await ctx.db.transaction(async (tx) => {
        const locked = await lockDeploymentByName(tx, found.name);
        if (!locked) throw errors.deploymentNotFound(req.params.id, 'list deployments with GET /api/v1/deployments (`drydock deployments`)');
        if (locked.deleting) return;
        const moving = await openMigrationsOfDeployment(tx, locked.id);
        if (moving.length > 0) throw fleetChangeErrors.deploymentMigrating(found.name, moving);
        await markDeploymentDeleting(tx, locked.id, actor);
        await appendEvents(tx, [{ kind: EVENT.deployment.deletion_requested, actor, data: { deployment_id: locked.id, name: found.name, instances: locked.instances } }]);
      });
      ctx.reconciler.deploymentsChanged([found.id]);
      // Gone already when it had no instance and the reconciler was quick: the last view, marked.
      const after = (await findDeployment(ctx.db, found.id)) ?? { ...found, deleting: true };
      return reply.code(202).send(withHealth(after));
    },
  );

  app.get('/api/v1/deployments/:id', { schema: { tags, operationId: 'getDeployment', summary: 'One deployment, by id or name', params, response: { 200: DeploymentViewSchema } } }, async (req) =>
    withHealth(await mustFind(req.params.id)),
  );

  app.get('/api/v1/deployments/:id/health', { schema: { tags, operationId: 'getDeploymentHealth', summary: 'healthy, degraded (below replicas) or down (below min_available)', params, response: { 200: DeploymentHealthView } } }, async (req) => {
    const d = await mustFind(req.params.id);
    return {
      status: deploymentHealth(d.replicas, d.min_available, d.healthy_instances),
      deployment_id: d.id,
      name: d.name,
      replicas: d.replicas,
      min_available: d.min_available,
      healthy_instances: d.healthy_instances,
    };
  });

  app.get('/api/v1/deployments/:id/endpoints', { schema: { tags, operationId: 'listDeploymentEndpoints', summary: 'Published endpoints the edge routes to', params, response: { 200: z.array(Endpoint) } } }, async (req) => {
    const d = await mustFind(req.params.id);
    const instances = await listInstances(ctx.db, { deploymentId: d.id });
    return instances
      .filter((i) => i.published && i.url !== null)
      .map((i) => ({ instance_id: i.id, node_id: i.node_id, url: i.url as string, healthy: i.healthy }));
  });
}
