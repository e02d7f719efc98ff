-- Reboot-class components (DESIGN.md §12): a task first stages the new OS image on its node
-- while the node still serves (`staging`), then cordons and drains it. A staging node is worked
-- on by its rollout (§8.1: one task in flight per node).
ALTER TABLE rollout_tasks DROP CONSTRAINT IF EXISTS rollout_tasks_state_check;
ALTER TABLE rollout_tasks ADD CONSTRAINT rollout_tasks_state_check
  CHECK (state IN ('pending', 'staging', 'cordoned', 'draining', 'pre_node_hooks', 'installing', 'verifying', 'post_node_hooks', 'done', 'failed', 'rolled_back', 'skipped'));
DROP INDEX IF EXISTS rollout_tasks_one_in_flight_per_node;
CREATE UNIQUE INDEX rollout_tasks_one_in_flight_per_node ON rollout_tasks (node_id)
  WHERE state IN ('staging', 'cordoned', 'draining', 'pre_node_hooks', 'installing', 'verifying', 'post_node_hooks');
