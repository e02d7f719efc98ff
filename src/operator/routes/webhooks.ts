import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { EVENT, EVENT_CATALOG } from '../../domain/events.js';
import { DELIVERY_STATES, redactUrl, unmatchedPrefixes, WEBHOOK_FORMATS } from '../../domain/webhooks.js';
import { appendEvents } from '../../store/events.js';
import { deleteWebhook, insertWebhook, listDeliveries, listWebhooks } from '../../store/webhooks.js';
import type { OperatorContext } from '../context.js';
import { actorOf } from '../request-actor.js';
import { IdParam } from '../schemas.js';
import { webhookErrors } from '../webhook-errors.js';

const CreateBody = z
  .object({
    url: z.url({ protocol: /^https?$/, hostname: z.regexes.hostname }).max(2048).describe('where deliveries are POSTed (http or https)'),
    events: z
      .array(z.string().min(1).max(100).regex(/^[a-z_]+(\.[a-z_]*)?$/, 'an event kind or a prefix of kinds, e.g. rollout. or node.down'))
      .min(1)
      .max(50)
      .describe('event kind prefixes: `rollout.` takes every rollout event, `node.down` only that one'),
    format: z.enum(WEBHOOK_FORMATS).default('drydock').describe('drydock (the event as JSON) or slack (an incoming-webhook `text` message); default drydock'),
    secret: z.string().min(16).max(512).describe('HMAC-SHA256 key deliveries are signed with (x-drydock-signature); stored, never returned'),
  })
  .strict();

// The response schemas are also what keeps the secret in: the serializer sends only these fields.
const WebhookView = z.object({
  id: z.string(),
  url: z.string(),
  events: z.array(z.string()),
  format: z.enum(WEBHOOK_FORMATS),
  created_by: z.string(),
  created_at: z.string(),
  pending: z.number().int(),
  delivered: z.number().int(),
  failed: z.number().int(),
});

const DeliveryView = z.object({
  id: z.string(),
  webhook_id: z.string(),
  event_id: z.number().int(),
  event_kind: z.string(),
  state: z.enum(DELIVERY_STATES),
  attempts: z.number().int(),
  next_attempt_at: z.string().nullable(),
  last_attempt_at: z.string().nullable(),
  last_status: z.number().int().nullable(),
  last_error: z.string().nullable(),
  delivered_at: z.string().nullable(),
  created_at: z.string(),
});

const DeliveryQuery = z
  .object({
    webhook: z.string().min(1).max(200).optional().describe('deliveries of this webhook id'),
    state: z.enum(DELIVERY_STATES).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100).describe('newest first; default 100'),
  })
  .strict();

/** Webhook subscriptions and their deliveries (README: Notifications). Writes need admin. */
export async function webhookRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  const tags = ['webhooks'];
  const kinds = Object.keys(EVENT_CATALOG);

  // Admins (and everyone on an open operator) see whole URLs; other roles scheme, host and port.
  const urlFor = (req: FastifyRequest) => (url: string) => (!ctx.tokens || req.principal?.role === 'admin' ? url : redactUrl(url));

  app.get(
    '/api/v1/webhooks',
    { schema: { tags, operationId: 'listWebhooks', summary: 'Webhook subscriptions with delivery counts (never their secrets; URLs whole for admins only)', response: { 200: z.array(WebhookView) } } },
    async (req) => {
      const show = urlFor(req);
      return (await listWebhooks(ctx.db)).map((hook) => ({ ...hook, url: show(hook.url) }));
    },
  );

  app.post(
    '/api/v1/webhooks',
    { config: { role: 'admin' }, schema: { tags, operationId: 'createWebhook', body: CreateBody, summary: 'Subscribe a URL to event kinds', response: { 201: WebhookView } } },
    async (req, reply) => {
      const { url, events, format, secret } = req.body;
      const unknown = unmatchedPrefixes(events, kinds);
      if (unknown.length > 0) throw webhookErrors.unknownEvents(unknown);
      const id = `wh-${ctx.newId().slice(0, 8)}`;
      const actor = actorOf(req);
      await ctx.db.transaction(async (tx) => {
        await insertWebhook(tx, { id, url, events, format, secret, createdBy: actor });
        await appendEvents(tx, [{ kind: EVENT.webhook.created, actor, data: { webhook_id: id, url: redactUrl(url), events, format } }]);
      });
      // Read back in the same shape as the list (counts included); it was just committed.
      const [created] = await listWebhooks(ctx.db, id);
      if (!created) throw webhookErrors.webhookNotFound(id);
      return reply.code(201).send(created);
    },
  );

  app.delete('/api/v1/webhooks/:id', { config: { role: 'admin' }, schema: { tags, operationId: 'deleteWebhook', params: IdParam, summary: 'Remove a subscription and its deliveries', response: { 200: z.object({ id: z.string(), deleted: z.literal(true) }) } } }, async (req) => {
    const actor = actorOf(req);
    await ctx.db.transaction(async (tx) => {
      if (!(await deleteWebhook(tx, req.params.id))) throw webhookErrors.webhookNotFound(req.params.id);
      await appendEvents(tx, [{ kind: EVENT.webhook.deleted, actor, data: { webhook_id: req.params.id } }]);
    });
    return { id: req.params.id, deleted: true as const };
  });

  app.get(
    '/api/v1/webhooks/deliveries',
    { schema: { tags, operationId: 'listWebhookDeliveries', querystring: DeliveryQuery, summary: 'Deliveries, newest first: state, attempts, last status and error, next attempt', response: { 200: z.array(DeliveryView) } } },
    async (req) => listDeliveries(ctx.db, { webhookId: req.query.webhook, state: req.query.state, limit: req.query.limit }),
  );
}
