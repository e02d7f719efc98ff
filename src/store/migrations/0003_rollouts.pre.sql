-- Rollouts: their tasks (one per node), approvals, the leader lease, the compatibility matrix,
-- and the instance facts preflight needs (volume health, backup/snapshot activity).

-- Leader election with a fencing token: `term` only ever grows; every reconciler write checks it.
CREATE TABLE leases (
  name       text PRIMARY KEY,
  holder     text NOT NULL,
  term       bigint NOT NULL,
  expires_at timestamptz NOT NULL
);

CREATE TABLE rollouts (
  id                text PRIMARY KEY,
  name              text NOT NULL,
  component         text NOT NULL,
  version           text NOT NULL,
  -- The spec as given (edits apply to it) and as validated with every default filled in.
  spec_input        jsonb NOT NULL,
  spec              jsonb NOT NULL,
  status            text NOT NULL,
  drain_mode        text NOT NULL CHECK (drain_mode IN ('migrate', 'restart', 'none')),
  disruptive        boolean NOT NULL DEFAULT false,
  current_batch     integer NOT NULL DEFAULT -1,
  batch_count       integer NOT NULL,
  batch_started_at  timestamptz,
  batch_finished_at timestamptz,
  breaker_reset_at  timestamptz,
  plan              jsonb NOT NULL,
  preflight         jsonb NOT NULL,
  overrides         jsonb NOT NULL DEFAULT '[]',
  created_by        text NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  finished_at       timestamptz
);
CREATE INDEX rollouts_status ON rollouts (status);

CREATE TABLE rollout_tasks (
  id             text PRIMARY KEY,
  rollout_id     text NOT NULL REFERENCES rollouts (id),
  node_id        text NOT NULL REFERENCES nodes (id),
  hostname       text NOT NULL,
  region         text NOT NULL,
  batch          integer NOT NULL,
  state          text NOT NULL CHECK (state IN ('pending', 'cordoned', 'draining', 'installing', 'verifying', 'done', 'failed', 'rolled_back', 'skipped')),
  direction      text NOT NULL DEFAULT 'forward' CHECK (direction IN ('forward', 'rollback')),
  from_version   text,
  state_since    timestamptz NOT NULL,
  healthy_since  timestamptz,
  finished_at    timestamptz,
  last_error     text,
  cordoned_by_us boolean NOT NULL DEFAULT false
);
CREATE INDEX rollout_tasks_rollout ON rollout_tasks (rollout_id, batch);
-- DESIGN.md §8.1: a node is worked on by at most one rollout at a time.
CREATE UNIQUE INDEX rollout_tasks_one_in_flight_per_node ON rollout_tasks (node_id)
  WHERE state IN ('cordoned', 'draining', 'installing', 'verifying');

CREATE TABLE approvals (
  id           text PRIMARY KEY,
  rollout_id   text NOT NULL REFERENCES rollouts (id),
  kind         text NOT NULL CHECK (kind IN ('plan', 'continuation', 'gate')),
  status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'decided', 'cancelled')),
  options      jsonb NOT NULL DEFAULT '[]',
  reason       text,
  requested_by text NOT NULL,
  decision     text,
  decided_by   text,
  decided_at   timestamptz,
  edits        jsonb NOT NULL DEFAULT '[]',
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX approvals_rollout ON approvals (rollout_id);

-- Rules like "node-agent >=2.0.0 requires operator >=2.0.0".
CREATE TABLE compat_rules (
  id                 integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  component          text NOT NULL,
  version_range      text NOT NULL,
  requires_component text NOT NULL,
  requires_range     text NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now()
);

-- Reported by agents: a volume's replica health and a backup/snapshot in progress (preflight).
ALTER TABLE instances ADD COLUMN volume jsonb;
ALTER TABLE instances ADD COLUMN activity text;
