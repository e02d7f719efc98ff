-- Moves of instances between nodes as an aggregate (DESIGN.md §10): a `restart` move (a
-- replacement starts on the target and takes over) or a `live` one (a VM's running guest is
-- transferred to a QEMU waiting on the target). VM images are artifacts of kind `vm-image`.

ALTER TABLE artifacts DROP CONSTRAINT IF EXISTS artifacts_kind_check;
ALTER TABLE artifacts ADD CONSTRAINT artifacts_kind_check CHECK (kind IN ('agent', 'binary', 'script', 'vm-image'));

-- What the agent last reported about its side of a live migration (domain/instance-migration.ts).
ALTER TABLE instances ADD COLUMN IF NOT EXISTS migration_report jsonb;

CREATE TABLE IF NOT EXISTS instance_migrations (
  id                 text PRIMARY KEY,
  instance_id        text NOT NULL,
  deployment_id      text NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  source_node_id     text NOT NULL,
  target_node_id     text NOT NULL,
  target_instance_id text NOT NULL,
  mode               text NOT NULL CHECK (mode IN ('live', 'restart')),
  trigger            text NOT NULL CHECK (trigger IN ('drain', 'manual')),
  state              text NOT NULL CHECK (state IN ('preparing', 'target_ready', 'transferring', 'switching', 'completed', 'failed', 'cancelled')),
  reason             text,
  target_address     text,
  downtime_limit_ms  integer NOT NULL CHECK (downtime_limit_ms > 0),
  deadline_at        timestamptz NOT NULL,
  started_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  ended_at           timestamptz,
  total_ms           double precision,
  downtime_ms        double precision,
  transferred_bytes  bigint
);
-- Never a second open migration for one instance, whoever starts it.
CREATE UNIQUE INDEX IF NOT EXISTS instance_migrations_one_open ON instance_migrations (instance_id)
  WHERE state IN ('preparing', 'target_ready', 'transferring', 'switching');
CREATE INDEX IF NOT EXISTS instance_migrations_target ON instance_migrations (target_instance_id);
CREATE INDEX IF NOT EXISTS instance_migrations_started ON instance_migrations (started_at DESC, id DESC);
