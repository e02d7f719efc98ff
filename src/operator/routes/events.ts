import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { listEvents } from '../../store/events.js';
import type { OperatorContext } from '../context.js';
import { EventsQuery } from '../schemas.js';

/** How often the stream looks for new events (a new row is on the wire within this). */
const STREAM_POLL_MS = 250;
/** A comment line this often keeps proxies from closing an idle stream. */
const STREAM_KEEPALIVE_MS = 15_000;

export async function eventRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  // Server-Sent Events: `id` is the event id, so a reconnecting client resumes with Last-Event-ID.
  app.get(
    '/api/v1/events/stream',
    { schema: { tags: ['events'], querystring: EventsQuery, summary: 'The event log as Server-Sent Events, from ?after= or Last-Event-ID' } },
    async (req, reply) => {
      const resume = Number(req.headers['last-event-id']);
      let after = Number.isInteger(resume) && resume > 0 ? resume : (req.query.after ?? 0);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.write(': drydock event stream\n\n');
      let open = true;
      req.raw.once('close', () => {
        open = false;
      });
      let lastWrite = Date.now();
      while (open) {
        const events = await listEvents(ctx.db, { after, kindPrefix: req.query.kind_prefix, nodeId: req.query.node_id, rolloutId: req.query.rollout_id, limit: 500 }).catch(() => []);
        for (const event of events) {
          res.write(`id: ${event.id}\nevent: ${event.kind}\ndata: ${JSON.stringify(event)}\n\n`);
          after = event.id;
          lastWrite = Date.now();
        }
        if (Date.now() - lastWrite > STREAM_KEEPALIVE_MS) {
          res.write(': keepalive\n\n');
          lastWrite = Date.now();
        }
        if (events.length < 500) await new Promise((r) => setTimeout(r, STREAM_POLL_MS));
      }
      res.end();
    },
  );
  app.get('/api/v1/events', { schema: { tags: ['events'], querystring: EventsQuery, summary: 'The event log, oldest first' } }, async (req) =>
    listEvents(ctx.db, {
      after: req.query.after,
      kindPrefix: req.query.kind_prefix,
      nodeId: req.query.node_id,
      rolloutId: req.query.rollout_id,
      limit: req.query.limit,
      newestFirst: req.query.order === 'desc',
    }),
  );
}
