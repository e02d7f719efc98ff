import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { OperatorContext } from '../context.js';
import { listReplicas } from '../../store/operator-replicas.js';
import { REPLICA_STALE_AFTER_MS } from '../replica-registry.js';
import { ReplicaView } from '../response-views.js';

/** The control plane as a fleet (DESIGN.md §11): every operator replica, its version, readiness and leadership. */
export async function operatorRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  base.get(
    '/api/v1/operators',
    {
      schema: {
        tags: ['operators'],
        operationId: 'listOperators',
        summary: 'Operator replicas: live ones first; a replica silent for 10 s is not live, and never ready or leader',
        response: { 200: z.array(ReplicaView) },
      },
    },
    async () => listReplicas(ctx.db, REPLICA_STALE_AFTER_MS),
  );
}
