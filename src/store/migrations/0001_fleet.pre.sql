-- The fleet: nodes and their agents, deployments and their instances, drains, the event log.

CREATE TABLE nodes (
  id                text PRIMARY KEY,
  hostname          text NOT NULL UNIQUE,
  region            text NOT NULL,
  role              text NOT NULL CHECK (role IN ('worker', 'control-plane')),
  labels            jsonb NOT NULL DEFAULT '{}',
  status            text NOT NULL DEFAULT 'ready',
  cordoned          boolean NOT NULL DEFAULT false,
  max_instances     integer NOT NULL CHECK (max_instances >= 0),
  components        jsonb NOT NULL DEFAULT '{}',
  agent_version     text,
  agent_url         text,
  protocol_version  integer,
  -- Bumped whenever the node's desired state changes; wakes the agent's long-poll.
  generation        bigint NOT NULL DEFAULT 1,
  last_heartbeat_at timestamptz,
  registered_at     timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nodes_region ON nodes (region);

CREATE TABLE deployments (
  id            text PRIMARY KEY,
  name          text NOT NULL UNIQUE,
  replicas      integer NOT NULL CHECK (replicas >= 0),
  min_available integer NOT NULL CHECK (min_available >= 0),
  workload      jsonb NOT NULL,
  node_selector jsonb,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE instances (
  id                text PRIMARY KEY,
  deployment_id     text NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
  node_id           text NOT NULL REFERENCES nodes (id),
  desired           text NOT NULL DEFAULT 'running' CHECK (desired IN ('running', 'stopped')),
  status            text NOT NULL DEFAULT 'pending',
  healthy           boolean NOT NULL DEFAULT false,
  published         boolean NOT NULL DEFAULT false,
  replaces          text,
  restart_on_enable boolean NOT NULL DEFAULT false,
  pid               integer,
  port              integer,
  message           text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instances_node ON instances (node_id);
CREATE INDEX instances_deployment ON instances (deployment_id);

CREATE TABLE drains (
  node_id    text PRIMARY KEY REFERENCES nodes (id),
  state      text NOT NULL CHECK (state IN ('running', 'blocked', 'completed', 'failed')),
  force      boolean NOT NULL DEFAULT false,
  started_at timestamptz NOT NULL,
  deadline   timestamptz NOT NULL,
  message    text NOT NULL DEFAULT '',
  blocked_by jsonb NOT NULL DEFAULT '[]',
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Append-only. Writers serialize on an advisory lock so ids commit in order and a reader
-- paging with ?after=ID never skips an event that commits late.
CREATE TABLE events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  kind        text NOT NULL,
  rollout_id  text,
  node_id     text,
  instance_id text,
  actor       text NOT NULL,
  data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_kind ON events (kind text_pattern_ops, id);
CREATE INDEX events_node ON events (node_id, id);
