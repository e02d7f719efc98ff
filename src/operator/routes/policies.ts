import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { parsePolicy } from '../../domain/rollout/policy.js';
import { appendEvents } from '../../store/events.js';
import { deletePolicy, findPolicy, listPolicies, upsertPolicy } from '../../store/policies.js';
import type { OperatorContext } from '../context.js';
import { policyErrors } from '../policy-errors.js';
import { actorOf } from '../request-actor.js';
import { EVENT } from '../../domain/events.js';

// The body is the policy document itself, validated by parsePolicy so every error names its
// path the same way for the API and `drydock policy set -f`.
const PolicyBody = z.record(z.string(), z.unknown()).describe('a policy (README: Quarantine and policies)');
const NameParam = z.object({ name: z.string().min(1).max(63).regex(/^[a-z0-9.-]+$/, 'a policy name') });

export async function policyRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['policies'];

  app.get('/api/v1/policies', { schema: { tags, summary: 'Operator-side rollout policies, by name' } }, async () => listPolicies(ctx.db));

  app.get('/api/v1/policies/:name', { schema: { tags, params: NameParam, summary: 'One policy' } }, async (req) => {
    const found = await findPolicy(ctx.db, req.params.name);
    if (!found) throw policyErrors.policyNotFound(req.params.name);
    return found;
  });

  app.put('/api/v1/policies', { config: { role: 'admin' }, schema: { tags, body: PolicyBody, summary: 'Create or replace a policy (by its name)' } }, async (req, reply) => {
    const parsed = parsePolicy(req.body);
    if (!parsed.ok) throw policyErrors.policyInvalid(parsed.issues);
    const actor = actorOf(req);
    const { policy } = parsed;
    const created = await ctx.db.transaction(async (tx) => {
      const result = await upsertPolicy(tx, policy, actor);
      await appendEvents(tx, [{ kind: EVENT.policy.set, actor, data: { name: policy.name, created: result.created, policy } }]);
      return result.created;
    });
    return reply.code(created ? 201 : 200).send(await findPolicy(ctx.db, policy.name));
  });

  app.delete('/api/v1/policies/:name', { config: { role: 'admin' }, schema: { tags, params: NameParam, summary: 'Delete a policy (rollouts created under it keep their effective spec)' } }, async (req) => {
    const actor = actorOf(req);
    await ctx.db.transaction(async (tx) => {
      if (!(await deletePolicy(tx, req.params.name))) throw policyErrors.policyNotFound(req.params.name);
      await appendEvents(tx, [{ kind: EVENT.policy.deleted, actor, data: { name: req.params.name } }]);
    });
    return { name: req.params.name, deleted: true };
  });
}
