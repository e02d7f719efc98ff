import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { MIGRATION_STATES } from '../../domain/instance-migration.js';
import { findMigration, listMigrations } from '../../store/instance-migrations.js';
import type { OperatorContext } from '../context.js';
import { errors } from '../errors.js';
import { MigrationView } from '../response-views.js';
import { IdParam } from '../schemas.js';

const ListQuery = z
  .object({
    state: z.enum(['open', ...MIGRATION_STATES]).optional().describe('open (any state still in flight) or one state'),
    instance: z.string().min(1).max(200).optional().describe('moves of this instance (as source or target)'),
    node: z.string().min(1).max(200).optional().describe('moves from or to this node id'),
    limit: z.coerce.number().int().min(1).max(1000).default(100).describe('newest first; default 100'),
  })
  .strict();

/** Moves of instances between nodes (DESIGN.md §10): live (VMs) and restart (make-before-break). */
export async function migrationRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['migrations'];

  app.get('/api/v1/migrations', { schema: { tags, operationId: 'listMigrations', querystring: ListQuery, summary: 'Moves of instances, newest first, with state and (live) downtime', response: { 200: z.array(MigrationView) } } }, async (req) =>
    listMigrations(ctx.db, { state: req.query.state, instanceId: req.query.instance, nodeId: req.query.node, limit: req.query.limit }),
  );

  app.get('/api/v1/migrations/:id', { schema: { tags, operationId: 'getMigration', params: IdParam, summary: 'One move', response: { 200: MigrationView } } }, async (req) => {
    const migration = await findMigration(ctx.db, req.params.id);
    if (!migration) throw errors.migrationNotFound(req.params.id, 'list moves with GET /api/v1/migrations (`drydock migrations`)');
    return migration;
  });
}
