import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EVENT_CATALOG } from '../../src/domain/events.js';
import { afterAttempt, DEFAULT_RETRY_POLICY, redactUrl, retryDelayMs, subscribes, unmatchedPrefixes, webhookBody, type WebhookEvent } from '../../src/domain/webhooks.js';

const KINDS = Object.keys(EVENT_CATALOG);
const event: WebhookEvent = {
  id: 42,
  at: '2026-12-02T10:00:00.000Z',
  kind: 'node.down',
  rollout_id: null,
  node_id: 'n-1',
  instance_id: null,
  actor: 'operator',
  data: { hostname: 'worker-1', from: 'ready', to: 'down' },
};

describe('webhook subscriptions', () => {
  it('a prefix takes every kind it starts; a whole kind only itself', () => {
    expect(subscribes(['rollout.'], 'rollout.completed')).toBe(true);
    expect(subscribes(['node.down'], 'node.down')).toBe(true);
    expect(subscribes(['node.down'], 'node.drained')).toBe(false);
    // `_` is a character, not a wildcard (the outbox matches with starts_with, not LIKE).
    expect(subscribes(['node.drain_'], 'node.drainXstarted')).toBe(false);
  });

  it('refuses prefixes that match no kind in the catalog (typos), keeps the rest', () => {
    expect(unmatchedPrefixes(['rollout.', 'node.down', 'rolout.', 'node.dwn'], KINDS)).toEqual(['rolout.', 'node.dwn']);
    expect(unmatchedPrefixes(['webhook.'], KINDS)).toEqual([]);
  });
});

describe('webhook retries', () => {
  it('doubles from the initial wait and stops at the maximum', () => {
    const policy = { initialMs: 1000, maxMs: 60_000, giveUpAfterMs: 3_600_000 };
    expect([1, 2, 3, 4, 6, 7, 50].map((n) => retryDelayMs(n, policy))).toEqual([1000, 2000, 4000, 8000, 32_000, 60_000, 60_000]);
  });

  it('property: waits never shrink, never exceed the maximum, and a failing delivery is given up only past giveUpAfterMs', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60_000 }),
        fc.integer({ min: 1, max: 3_600_000 }),
        fc.integer({ min: 1, max: 48 * 3_600_000 }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 0, max: 72 * 3_600_000 }),
        (initialMs, extra, giveUpAfterMs, attempts, elapsed) => {
          const policy = { initialMs, maxMs: initialMs + extra, giveUpAfterMs };
          const wait = retryDelayMs(attempts + 1, policy);
          expect(wait).toBeLessThanOrEqual(policy.maxMs);
          expect(retryDelayMs(attempts + 2, policy)).toBeGreaterThanOrEqual(wait);
          const createdAt = new Date(0);
          const now = new Date(elapsed);
          const update = afterAttempt({ attempts, createdAt }, { ok: false, status: 503, error: 'HTTP 503' }, policy, now);
          expect(update.attempts).toBe(attempts + 1);
          if (elapsed + wait > giveUpAfterMs) expect(update.state).toBe('failed');
          else expect(update).toMatchObject({ state: 'pending', nextAttemptAt: new Date(elapsed + wait) });
        },
      ),
    );
  });

  it('a 2xx delivers at once, however late', () => {
    const update = afterAttempt({ attempts: 9, createdAt: new Date(0) }, { ok: true, status: 204 }, DEFAULT_RETRY_POLICY, new Date(10 * 86_400_000));
    expect(update).toEqual({ state: 'delivered', attempts: 10, lastStatus: 204, lastError: null, nextAttemptAt: null });
  });

  it('retries for hours by default', () => {
    expect(DEFAULT_RETRY_POLICY.giveUpAfterMs).toBeGreaterThanOrEqual(3_600_000);
  });
});

describe('webhook bodies', () => {
  it('drydock format: the delivery id and the event as the events API shows it', () => {
    expect(webhookBody('drydock', '7', event)).toEqual({ delivery_id: '7', event });
  });

  it('slack format: one mrkdwn `text` naming the kind, the node, the actor and the event id', () => {
    const body = webhookBody('slack', '7', event);
    expect(Object.keys(body)).toEqual(['text']);
    expect(body.text).toBe('*node.down* node `worker-1` by operator at 2026-12-02T10:00:00.000Z (event 42)');
  });
});

describe('webhook URLs below admin', () => {
  it('keep scheme, host and port; the path and query (where receivers keep credentials) are hidden', () => {
    expect(redactUrl('https://hooks.slack.com/services/T0/B0/secretpart')).toBe('https://hooks.slack.com/…');
    expect(redactUrl('http://127.0.0.1:9000/hook?token=abc')).toBe('http://127.0.0.1:9000/…');
    expect(redactUrl('http://127.0.0.1:9000/')).toBe('http://127.0.0.1:9000/');
    expect(redactUrl('http://127.0.0.1:9000')).toBe('http://127.0.0.1:9000');
  });
});
