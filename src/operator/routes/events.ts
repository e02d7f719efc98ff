import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { listEvents } from '../../store/events.js';
import type { OperatorContext } from '../context.js';
import { EventsQuery } from '../schemas.js';
import { EventView, TextBody } from '../response-views.js';

/** How often the stream looks for new events (a new row is on the wire within this). */
const STREAM_POLL_MS = 250;
/** A comment line this often keeps proxies from closing an idle stream. */
const STREAM_KEEPALIVE_MS = 15_000;
/** Last-Event-ID is what a client got from us: an event id (a bigint identity, safe below 2^53). */
const StreamHeaders = z.looseObject({
  'last-event-id': z
    .string()
    .regex(/^\d{1,15}$/, 'an event id (digits) as sent in the stream\'s `id:` lines')
    .optional()
    .describe('resume after this event id (the standard SSE reconnection header); wins over ?after='),
});

export async function eventRoutes(base: FastifyInstance, ctx: OperatorContext): Promise<void> {
  const app = base.withTypeProvider<ZodTypeProvider>();
  // Server-Sent Events: every message's `id:` is the event id, so a reconnecting client (a
  // browser's EventSource, the CLI, the edge) sends the last one it got as Last-Event-ID and
  // resumes right after it. Event ids are assigned in commit order (appends are serialized, see
  // store/events.ts), so "after id N" misses nothing committed while the client was away.
  app.get(
    '/api/v1/events/stream',
    {
      schema: {
        tags: ['events'],
        operationId: 'streamEvents',
        querystring: EventsQuery,
        headers: StreamHeaders,
        summary: 'The event log as Server-Sent Events, after Last-Event-ID when sent, else after ?after=',
        response: { 200: TextBody('Server-Sent Events: `id:` the event id, `data:` the event as JSON', 'text/event-stream') },
      },
    },
    async (req, reply) => {
      const resume = req.headers['last-event-id'];
      let after = resume === undefined ? (req.query.after ?? 0) : Number(resume);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      // Node sends a HEAD response's headers only when it ends, and a stream never ends.
      if (req.method === 'HEAD') return void res.end();
      res.write(': drydock event stream\n\n');
      let open = true;
      req.raw.once('close', () => {
        open = false;
        // A hijacked reply skips onResponse: the stream is counted here, like a long-poll.
        ctx.metrics.longPolls.inc({ route: '/api/v1/events/stream', status_code: '200' });
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
  app.get('/api/v1/events', { schema: { tags: ['events'], operationId: 'listEvents', querystring: EventsQuery, summary: 'The event log, oldest first', response: { 200: z.array(EventView) } } }, async (req) =>
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
