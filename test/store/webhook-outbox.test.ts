import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { afterAttempt, DEFAULT_RETRY_POLICY } from '../../src/domain/webhooks.js';
import { appendEvents } from '../../src/store/events.js';
import { deleteWebhook, dueDeliveries, insertWebhook, listDeliveries, listWebhooks, outboxBacklog, recordAttempt } from '../../src/store/webhooks.js';
import { createTestDb, TEST_ENGINE, type TestDb } from '../support/db.js';

const hook = (id: string, events: string[]) => ({ id, url: `http://127.0.0.1:9/${id}`, events, format: 'drydock' as const, secret: 'a-secret-of-16-chars', createdBy: 'test' });

describe(`webhook outbox on ${TEST_ENGINE}`, () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb();
    await insertWebhook(t.db, hook('wh-rollouts', ['rollout.']));
    await insertWebhook(t.db, hook('wh-down', ['node.down', 'node.up']));
    await insertWebhook(t.db, hook('wh-underscore', ['node.drain_']));
  });
  afterAll(async () => t?.cleanup());

  const deliveryPairs = async () =>
    (await t.db.query<{ webhook_id: string; kind: string }>('SELECT d.webhook_id, e.kind FROM webhook_deliveries d JOIN events e ON e.id = d.event_id ORDER BY d.id')).map(
      (r) => `${r.webhook_id} ${r.kind}`,
    );

  it('an appended event queues one delivery per matching subscription, in the same transaction', async () => {
    await t.db.transaction(async (tx) => {
      await appendEvents(tx, [
        { kind: 'rollout.started', actor: 'test', rolloutId: 'r-1' },
        { kind: 'node.down', actor: 'test', nodeId: 'n-1' },
        { kind: 'node.drained', actor: 'test', nodeId: 'n-1' },
        { kind: 'node.drain_started', actor: 'test', nodeId: 'n-1' },
        { kind: 'node.cordoned', actor: 'test', nodeId: 'n-1' },
      ]);
    });
    // node.drained does not start with node.drain_ (an `_` is not a LIKE wildcard here).
    expect(await deliveryPairs()).toEqual(['wh-rollouts rollout.started', 'wh-down node.down', 'wh-underscore node.drain_started']);
  });

  it('an event whose transaction rolls back leaves no delivery', async () => {
    const before = await deliveryPairs();
    await expect(
      t.db.transaction(async (tx) => {
        await appendEvents(tx, [{ kind: 'rollout.completed', actor: 'test', rolloutId: 'r-1' }]);
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    expect(await deliveryPairs()).toEqual(before);
  });

  it('due deliveries carry the event and the secret; an attempt is recorded once, from the attempt count it started at', async () => {
    // At most N per subscription: one slow receiver does not hold up the others.
    expect((await dueDeliveries(t.db, 1)).map((d) => d.event.kind)).toEqual(['rollout.started', 'node.down', 'node.drain_started']);
    const due = await dueDeliveries(t.db, 10);
    expect(due.map((d) => d.event.kind)).toEqual(['rollout.started', 'node.down', 'node.drain_started']);
    const first = due[0];
    if (!first) throw new Error('no delivery');
    expect(first.secret).toBe('a-secret-of-16-chars');
    expect(first.event).toMatchObject({ kind: 'rollout.started', rollout_id: 'r-1', actor: 'test' });

    const failed = afterAttempt(first, { ok: false, status: null, error: 'ECONNREFUSED' }, DEFAULT_RETRY_POLICY, new Date());
    expect(await recordAttempt(t.db, first.id, first.attempts, failed)).toBe(true);
    // A second sender that started from the same count (a deposed leader) records nothing.
    expect(await recordAttempt(t.db, first.id, first.attempts, failed)).toBe(false);
    expect((await dueDeliveries(t.db, 10)).map((d) => d.id)).not.toContain(first.id);

    const [row] = await listDeliveries(t.db, { webhookId: 'wh-rollouts' });
    expect(row).toMatchObject({ id: first.id, state: 'pending', attempts: 1, last_error: 'ECONNREFUSED', last_status: null, event_kind: 'rollout.started' });
    expect(Date.parse(row?.next_attempt_at ?? '')).toBeGreaterThan(Date.now());

    const delivered = afterAttempt({ attempts: 1, createdAt: first.createdAt }, { ok: true, status: 200 }, DEFAULT_RETRY_POLICY, new Date());
    expect(await recordAttempt(t.db, first.id, 1, delivered)).toBe(true);
    const [after] = await listDeliveries(t.db, { webhookId: 'wh-rollouts' });
    expect(after).toMatchObject({ state: 'delivered', attempts: 2, last_status: 200, last_error: null, next_attempt_at: null });
    expect(after?.delivered_at).not.toBeNull();
  });

  it('lists subscriptions with counts and without the secret; the backlog counts what is pending', async () => {
    const hooks = await listWebhooks(t.db);
    expect(hooks.map((h) => [h.id, h.pending, h.delivered])).toEqual([
      ['wh-rollouts', 0, 1],
      ['wh-down', 1, 0],
      ['wh-underscore', 1, 0],
    ]);
    expect(JSON.stringify(hooks)).not.toContain('a-secret-of-16-chars');
    expect((await outboxBacklog(t.db)).pending).toBe(2);
  });

  it('deleting a subscription removes its deliveries', async () => {
    expect(await deleteWebhook(t.db, 'wh-down')).toBe(true);
    expect(await deleteWebhook(t.db, 'wh-down')).toBe(false);
    expect(await listDeliveries(t.db, { webhookId: 'wh-down' })).toEqual([]);
  });

  it('takes at most N due deliveries of each subscription, oldest first', async () => {
    await appendEvents(t.db, ['rollout.paused', 'rollout.resumed', 'rollout.completed'].map((kind) => ({ kind, actor: 'test', rolloutId: 'r-2' })));
    const due = await dueDeliveries(t.db, 2);
    expect(due.map((d) => d.event.kind)).toEqual(['node.drain_started', 'rollout.paused', 'rollout.resumed']);
    expect((await dueDeliveries(t.db, 10)).map((d) => d.event.kind)).toEqual(['node.drain_started', 'rollout.paused', 'rollout.resumed', 'rollout.completed']);
  });
});
