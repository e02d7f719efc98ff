-- Webhooks (DESIGN.md §4, §9): subscriptions and a durable outbox of deliveries. appendEvents
-- writes a delivery row for every subscription an event matches in the same statement (and so
-- the same transaction) that appends the event: an event that commits has its deliveries, one
-- that rolls back has none. Only the leader sends them (src/operator/webhook-dispatcher.ts).
CREATE TABLE IF NOT EXISTS webhooks (
  id         text PRIMARY KEY,
  url        text NOT NULL,
  -- Event kind prefixes: `rollout.` takes every rollout event, `node.down` just that one.
  events     text[] NOT NULL CHECK (cardinality(events) > 0),
  format     text NOT NULL DEFAULT 'drydock' CHECK (format IN ('drydock', 'slack')),
  -- The HMAC-SHA256 key deliveries are signed with. Never returned by the API.
  secret     text NOT NULL,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  webhook_id      text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  event_id        bigint NOT NULL REFERENCES events (id),
  state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_attempt_at timestamptz,
  last_status     integer,
  last_error      text,
  delivered_at    timestamptz,
  created_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (webhook_id, event_id)
);
-- Due deliveries are taken a few per subscription (dueDeliveries), so one slow receiver cannot
-- hold up the others.
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (webhook_id, next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
