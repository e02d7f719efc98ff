-- Several components in one drain (DESIGN.md §12, spec `targets`): a task installs them in
-- order, going back in reverse. target_step is the index of the install it is at in its
-- direction's order; from_versions the version of every target component but the first before
-- the rollout (the first one keeps from_version).
ALTER TABLE rollout_tasks ADD COLUMN IF NOT EXISTS target_step integer NOT NULL DEFAULT 0;
ALTER TABLE rollout_tasks ADD COLUMN IF NOT EXISTS from_versions jsonb;
