-- Blue-green for the control plane (DESIGN.md §11): the new operator replicas start beside the
-- old ones, the load balancer moves to them once all are ready (traffic_switched_at), and the
-- old ones stop after retireAfter (previous_retired_at). Until then a rollback moves the traffic
-- back. Both times are recorded once, so a new leader resumes the same step.
ALTER TABLE rollouts ADD COLUMN IF NOT EXISTS traffic_switched_at timestamptz;
ALTER TABLE rollouts ADD COLUMN IF NOT EXISTS previous_retired_at timestamptz;
-- A node's desired component that keeps its previous version running beside the new one (the
-- old operator replica of a blue-green rollout, until it is retired).
ALTER TABLE node_components ADD COLUMN IF NOT EXISTS keep_previous boolean NOT NULL DEFAULT false;
