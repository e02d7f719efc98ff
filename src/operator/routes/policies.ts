import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { parsePolicy } from '../../domain/rollout/policy.js';
import { appendEvents } from '../../store/events.js';
import { deletePolicy, findPolicy, listPolicies, upsertPolicy } from '../../store/policies.js';
import type { OperatorContext } from '../context.js';
import { policyErrors } from '../policy-errors.js';
import { actorOf } from '../request-actor.js';
import { PolicyDeleted, PolicyView } from '../response-views.js';
import { EVENT } from '../../domain/events.js';

// The body is the policy document itself, validated by parsePolicy so every error names its
// path the same way for the API and `drydock policy set -f`.
const PolicyBody = z.record(z.string(), z.unknown()).describe('a policy (README: Quarantine and policies)');
const NameParam = z.object({ name: z.string().min(1).max(63).regex(/^[a-z0-9.-]+$/, 'a policy name') });

export async function policyRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['policies'];

  app.get('/api/v1/policies', { schema: { tags, operationId: 'listPolicies', summary: 'Operator-side rollout policies, by name', response: { 200: z.array(PolicyView) } } }, async () => listPolicies(ctx.db));

  app.get('/api/v1/policies/:name', { schema: { tags, operationId: 'getPolicy', params: NameParam, summary: 'One policy', response: { 200: PolicyView } } }, async (req) => {
    const found = await findPolicy(ctx.db, req.params.name);
    if (!found) throw policyErrors.policyNotFound(req.params.name);
    return found;
  });

  app.put('/api/v1/policies', { config: { role: 'admin' }, schema: { tags, operationId: 'setPolicy', body: PolicyBody, summary: 'Create or replace a policy (by its name)', response: { 200: PolicyView, 201: PolicyView } } }, async (req, reply) => {
    const parsed = parsePolicy(req.body);
    if (!parsed.ok) throw policyErrors.policyInvalid(parsed.issues);
    const actor = actorOf(req);
    const { policy } = parsed;
    const created = await ctx.db.transaction(async (tx) => {
      const result = await upsertPolicy(tx, policy, actor);
      await appendEvents(tx, [{ kind: EVENT.policy.set, actor, data: { name: policy.name, created: result.created, policy } }]);
      return result.created;
    });
    const stored = await findPolicy(ctx.db, policy.name);
    // Deleted by someone else since this write committed: say so rather than answer an empty body.
    if (!stored) throw policyErrors.policyNotFound(policy.name);
    return reply.code(created ? 201 : 200).send(stored);
  });

  app.delete('/api/v1/policies/:name', { config: { role: 'admin' }, schema: { tags, operationId: 'deletePolicy', params: NameParam, summary: 'Delete a policy (rollouts created under it keep their effective spec)', response: { 200: PolicyDeleted } } }, async (req) => {
    const actor = actorOf(req);
    await ctx.db.transaction(async (tx) => {
      if (!(await deletePolicy(tx, req.params.name))) throw policyErrors.policyNotFound(req.params.name);
      await appendEvents(tx, [{ kind: EVENT.policy.deleted, actor, data: { name: req.params.name } }]);
    });
    return { name: req.params.name, deleted: true };
  });
}
