-- Operator replicas are a fleet too (DESIGN.md §11): each registers its row and refreshes it
-- while it runs, so every replica, `GET /api/v1/operators` and a control-plane rollout see the
-- versions, readiness and leadership of all of them.
CREATE TABLE IF NOT EXISTS operator_replicas (
  id                   text PRIMARY KEY,
  hostname             text NOT NULL,
  region               text NOT NULL,
  url                  text NOT NULL,
  version              text NOT NULL,
  -- The newest schema migration this replica's build knows.
  knows_schema_version integer NOT NULL,
  ready                boolean NOT NULL,
  reason               text NOT NULL DEFAULT '',
  leader               boolean NOT NULL,
  started_at           timestamptz NOT NULL,
  last_seen_at         timestamptz NOT NULL DEFAULT now(),
  stopped_at           timestamptz
);
CREATE INDEX IF NOT EXISTS operator_replicas_seen ON operator_replicas (last_seen_at DESC);
