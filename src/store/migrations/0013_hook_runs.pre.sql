-- Rollout hooks (DESIGN.md §5, §12): the journal of every hook run, and the task states in which
-- a node's hooks run. A run's id is deterministic (`${task}/${point}/${index}`, or
-- `${rollout}/-/${point}/${index}` for preRollout/postRollout), so a decision taken twice names
-- the same run and a finished run is never started again.
CREATE TABLE IF NOT EXISTS hook_runs (
  id            text PRIMARY KEY,
  rollout_id    text NOT NULL REFERENCES rollouts (id),
  -- NULL for preRollout/postRollout (they run on the operator leader).
  node_id       text,
  point         text NOT NULL CHECK (point IN ('preRollout', 'preNode', 'postNode', 'postRollout')),
  hook_index    integer NOT NULL,
  -- Bumped when a run is started again (an operator-side run whose leader died mid-hook).
  attempt       integer NOT NULL DEFAULT 1,
  status        text NOT NULL CHECK (status IN ('requested', 'running', 'succeeded', 'failed')),
  -- The hook as the spec gave it (run or webhook, timeout ms, continueOnError, env) and the
  -- environment it runs with (DRYDOCK_* plus its own).
  hook          jsonb NOT NULL,
  env           jsonb NOT NULL,
  exit_code     integer,
  -- The last ~4 KiB of its output (or of a webhook's response body).
  output_tail   text,
  reason        text,
  -- The operator process running an operator-side run (its lease holder id).
  owner         text,
  requested_at  timestamptz NOT NULL DEFAULT now(),
  started_at    timestamptz,
  finished_at   timestamptz
);
CREATE INDEX IF NOT EXISTS hook_runs_rollout ON hook_runs (rollout_id);
-- The desired state lists a node's open runs: found by node without scanning finished ones.
CREATE INDEX IF NOT EXISTS hook_runs_open_by_node ON hook_runs (node_id) WHERE status IN ('requested', 'running');

ALTER TABLE rollout_tasks DROP CONSTRAINT IF EXISTS rollout_tasks_state_check;
ALTER TABLE rollout_tasks ADD CONSTRAINT rollout_tasks_state_check
  CHECK (state IN ('pending', 'cordoned', 'draining', 'pre_node_hooks', 'installing', 'verifying', 'post_node_hooks', 'done', 'failed', 'rolled_back', 'skipped'));
-- DESIGN.md §8.1 with the hook states: a node in its hooks is worked on by its rollout.
DROP INDEX IF EXISTS rollout_tasks_one_in_flight_per_node;
CREATE UNIQUE INDEX rollout_tasks_one_in_flight_per_node ON rollout_tasks (node_id)
  WHERE state IN ('cordoned', 'draining', 'pre_node_hooks', 'installing', 'verifying', 'post_node_hooks');
