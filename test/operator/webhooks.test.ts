// Webhooks against a real operator over HTTP and a real receiver (a node:http server on
// loopback): subscriptions, refusals, signed deliveries retried after a failure, delivery
// state, metrics, and that only the leader of two replicas sends.
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningOperator } from '../../src/operator/server.js';
import { verifySignature } from '../../src/operator/webhook-signature.js';
import type { DeliveryView, WebhookView } from '../../src/store/webhooks.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';
import { ApiClient, expectApiError, startTestOperator, waitFor } from '../support/operator.js';

const SECRET = 'whsec-0123456789abcdef';
const ADMIN = 'admin-token-0123456789';
const VIEWER = 'viewer-token-0123456789';

interface Received {
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describe(`webhooks on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  let leader: RunningOperator;
  let follower: RunningOperator;
  let admin: ApiClient;
  let dir: string;
  let receiver: Server;
  let receiverUrl = '';
  const received: Received[] = [];
  // The receiver answers 503 to the first `failuresLeft` requests, then 204.
  let failuresLeft = 1;

  beforeAll(async () => {
    t = await createTestDb();
    dir = mkdtempSync(join(tmpdir(), 'drydock-webhooks-'));
    const tokensFile = join(dir, 'tokens.yaml');
    writeFileSync(tokensFile, stringify({ tokens: [{ name: 'admin-bot', token: ADMIN, role: 'admin' }, { name: 'viewer-bot', token: VIEWER, role: 'viewer' }] }));
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        res.statusCode = failuresLeft-- > 0 ? 503 : 204;
        res.end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const address = receiver.address();
    receiverUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/hook`;
    const webhookRetry = { initialMs: 300, maxMs: 600, giveUpAfterMs: 120_000 };
    // A long lease: on a loaded machine a late renewal must not hand leadership over mid-test,
    // which would (correctly) resend a delivery the deposed leader could not record.
    leader = await startTestOperator(t.db, { tokensFile, webhookRetry, leaseTtlMs: 60_000 });
    follower = await startTestOperator(t.db, { tokensFile, webhookRetry, leaseTtlMs: 60_000 });
    admin = new ApiClient(leader.url, ADMIN);
  });
  afterAll(async () => {
    await follower?.close();
    await leader?.close();
    await new Promise((resolve) => receiver?.close(resolve));
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const webhookRows = async () => Number((await t.db.query<{ n: string }>('SELECT count(*) AS n FROM webhooks'))[0]?.n);

  it('refuses a bad subscription with a catalog error and stores nothing', async () => {
    const good = { url: receiverUrl, events: ['policy.'], secret: SECRET };
    const cases: [unknown, number, string][] = [
      [{ ...good, url: 'ftp://127.0.0.1/x' }, 400, 'VALIDATION_FAILED'],
      [{ ...good, url: 'not a url' }, 400, 'VALIDATION_FAILED'],
      [{ ...good, events: [] }, 400, 'VALIDATION_FAILED'],
      [{ ...good, events: ['rolout.'] }, 400, 'WEBHOOK_EVENTS_UNKNOWN'],
      [{ ...good, events: ['policy.', 'node.dwn'] }, 400, 'WEBHOOK_EVENTS_UNKNOWN'],
      [{ ...good, secret: 'short' }, 400, 'VALIDATION_FAILED'],
      [{ ...good, format: 'teams' }, 400, 'VALIDATION_FAILED'],
      [{ ...good, headers: { a: 'b' } }, 400, 'VALIDATION_FAILED'],
      [{ url: receiverUrl, events: ['policy.'] }, 400, 'VALIDATION_FAILED'],
    ];
    for (const [body, status, code] of cases) expectApiError(await admin.post('/api/v1/webhooks', body), status, code);
    expectApiError(await admin.post('/api/v1/webhooks', good, { token: VIEWER }), 403, 'FORBIDDEN');
    expectApiError(await admin.request('DELETE', '/api/v1/webhooks/wh-nope'), 404, 'WEBHOOK_NOT_FOUND');
    expectApiError(await admin.get('/api/v1/webhooks/deliveries?state=lost'), 400, 'VALIDATION_FAILED');
    expect(await webhookRows()).toBe(0);
  });

  let hook: WebhookView;

  it('creates a subscription; the secret is stored but never returned, listed or recorded', async () => {
    const created = await admin.post<WebhookView>('/api/v1/webhooks', { url: receiverUrl, events: ['policy.'], secret: SECRET });
    expect(created.status).toBe(201);
    hook = created.body;
    expect(hook).toMatchObject({ url: receiverUrl, events: ['policy.'], format: 'drydock', created_by: 'admin-bot', pending: 0 });
    // A viewer sees the subscription but not the URL's path (where receivers keep credentials).
    const origin = new URL(receiverUrl).origin;
    const list = await admin.get<WebhookView[]>('/api/v1/webhooks', { token: VIEWER });
    expect(list.body.map((w) => [w.id, w.url])).toEqual([[hook.id, `${origin}/…`]]);
    expect((await admin.get<WebhookView[]>('/api/v1/webhooks')).body.map((w) => w.url)).toEqual([receiverUrl]);
    const events = await admin.get<unknown[]>('/api/v1/events?kind_prefix=webhook.');
    expect(events.body).toMatchObject([{ kind: 'webhook.created', actor: 'admin-bot', data: { webhook_id: hook.id, url: `${origin}/…`, events: ['policy.'] } }]);
    for (const text of [created.text, list.text, events.text]) expect(text).not.toContain(SECRET);
    expect((await t.db.query<{ secret: string }>('SELECT secret FROM webhooks'))[0]?.secret).toBe(SECRET);
  });

  it('delivers a matching event signed, retries a failed attempt with the same delivery id, and shows each attempt', async () => {
    const policy = { name: 'hooked', match: { component: 'node-agent' }, approval: { required: true } };
    expect((await admin.request('PUT', '/api/v1/policies', policy)).status).toBe(201);
    const deliveries = await waitFor(
      'the delivery to succeed on its second attempt',
      async () => {
        const rows = (await admin.get<DeliveryView[]>(`/api/v1/webhooks/deliveries?webhook=${hook.id}`)).body;
        return rows[0]?.state === 'delivered' ? rows : undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(deliveries).toHaveLength(1);
    const [delivery] = deliveries;
    expect(delivery).toMatchObject({ event_kind: 'policy.set', attempts: 2, last_status: 204, last_error: null });
    // The receiver saw two requests, the first answered 503; same delivery id, both signed.
    expect(received).toHaveLength(2);
    for (const request of received) {
      expect(request.headers['x-drydock-delivery']).toBe(delivery?.id);
      expect(request.headers['x-drydock-event']).toBe('policy.set');
      expect(request.headers['content-type']).toBe('application/json');
      expect(verifySignature(SECRET, request.body, String(request.headers['x-drydock-signature']), Math.floor(Date.now() / 1000))).toBe(true);
      expect(verifySignature('another-secret-entirely', request.body, String(request.headers['x-drydock-signature']), Math.floor(Date.now() / 1000))).toBe(false);
      expect(JSON.parse(request.body)).toMatchObject({ delivery_id: delivery?.id, event: { id: delivery?.event_id, kind: 'policy.set', actor: 'admin-bot', data: { name: 'hooked' } } });
    }
    // Events it does not subscribe to are not queued.
    const all = (await admin.get<DeliveryView[]>('/api/v1/webhooks/deliveries')).body;
    expect(all.map((d) => d.event_kind)).toEqual(['policy.set']);
  });

  it('only the leader sends: every request the receiver saw is an attempt the outbox recorded', async () => {
    expect([leader.ctx.lease.leader, follower.ctx.lease.leader].filter(Boolean)).toHaveLength(1);
    for (const name of ['one', 'two', 'three']) {
      expect((await admin.request('PUT', '/api/v1/policies', { name, match: { component: 'node-agent' }, approval: { required: true } })).status).toBe(201);
    }
    const rows = await waitFor(
      'every delivery to be delivered',
      async () => {
        const list = (await admin.get<DeliveryView[]>('/api/v1/webhooks/deliveries')).body;
        return list.length === 4 && list.every((d) => d.state === 'delivered') ? list : undefined;
      },
      { timeoutMs: 30_000 },
    );
    // A follower sending too would show as requests no attempt accounts for.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(received).toHaveLength(rows.reduce((sum, d) => sum + d.attempts, 0));
    expect(new Set(received.map((r) => r.headers['x-drydock-delivery'])).size).toBe(4);
  });

  it('counts deliveries and failed attempts in /metrics of the leader', async () => {
    const text = (await admin.get<string>('/metrics')).text;
    const other = (await new ApiClient(follower.url).get<string>('/metrics')).text;
    const metrics = leader.ctx.lease.leader ? text : other;
    expect(metrics).toMatch(/^drydock_webhook_deliveries_total\{outcome="delivered"\} 4$/m);
    expect(metrics).toMatch(/^drydock_webhook_delivery_failures_total 1$/m);
    expect(text).toMatch(/^drydock_webhook_deliveries_pending 0$/m);
  });

  it('removing a subscription removes its deliveries', async () => {
    const removed = await admin.request<{ deleted: boolean }>('DELETE', `/api/v1/webhooks/${hook.id}`);
    expect(removed.body).toEqual({ id: hook.id, deleted: true });
    expect(await webhookRows()).toBe(0);
    expect((await admin.get<DeliveryView[]>('/api/v1/webhooks/deliveries')).body).toEqual([]);
  });
});
