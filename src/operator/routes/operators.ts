import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { OperatorContext } from '../context.js';
import { listReplicas } from '../../store/operator-replicas.js';
import { REPLICA_STALE_AFTER_MS } from '../replica-registry.js';
import { ReplicaView } from '../response-views.js';
import { isBlueGreen, markServing, servingSide } from '../../domain/rollout/blue-green.js';
import { ACTIVE_ROLLOUT_STATUSES } from '../../domain/rollout/model.js';
import { OPERATOR_COMPONENT } from '../../domain/rollout/schema-steps.js';
import { activeRolloutsOf } from '../../store/rollouts.js';

/** The control plane as a fleet (DESIGN.md §11): every operator replica, its version, readiness and leadership. */
export async function operatorRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  base.get(
    '/api/v1/operators',
    {
      schema: {
        tags: ['operators'],
        operationId: 'listOperators',
        summary: 'Operator replicas: live ones first; a replica silent for 10 s is not live, and never ready or leader; `serving` says which ones the load balancer uses',
        response: { 200: z.array(ReplicaView) },
      },
    },
    async () => {
      const replicas = await listReplicas(ctx.db, REPLICA_STALE_AFTER_MS);
      // A blue-green rollout of the operator says which side serves (blue-green.ts).
      const rollout = (await activeRolloutsOf(ctx.db, OPERATOR_COMPONENT, ACTIVE_ROLLOUT_STATUSES)).find(isBlueGreen);
      return markServing(replicas, rollout ? servingSide(rollout) : null, rollout?.spec.target.version ?? null);
    },
  );
}
