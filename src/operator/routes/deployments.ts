import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { deploymentHealth } from '../../domain/deployment-health.js';
import { type DeploymentView, findDeployment, insertDeployment, listDeployments } from '../../store/deployments.js';
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
