-- `drydock delete deployment`: a deleted deployment is marked, its instances are stopped and
-- removed by the fleet reconciler the way any instance is, and the row goes with the last one.
ALTER TABLE deployments ADD COLUMN IF NOT EXISTS deleting_since timestamptz;
ALTER TABLE deployments ADD COLUMN IF NOT EXISTS deleted_by text;

-- `drydock delete node`: a decommissioned node's row goes, and this tombstone remains so its
-- agent is refused with NODE_DECOMMISSIONED (instead of registering the node again).
CREATE TABLE IF NOT EXISTS decommissioned_nodes (
  id                text PRIMARY KEY,
  hostname          text NOT NULL,
  region            text NOT NULL,
  decommissioned_by text NOT NULL,
  decommissioned_at timestamptz NOT NULL DEFAULT now()
);

-- A rollout's history outlives its nodes: each task keeps its node's id, hostname and region.
ALTER TABLE rollout_tasks DROP CONSTRAINT IF EXISTS rollout_tasks_node_id_fkey;
