-- The control plane upgrades itself (DESIGN.md §11): operator builds are artifacts of kind
-- `operator`, and a rollout of them applies the target's schema migrations at its two ends:
-- `pre` (expand) before the first node, `post` (contract) after the last. Each step's time is
-- recorded once, so a new leader resumes instead of repeating it; after the contract a rollback
-- is refused (the older builds could no longer serve).
ALTER TABLE artifacts DROP CONSTRAINT IF EXISTS artifacts_kind_check;
ALTER TABLE artifacts ADD CONSTRAINT artifacts_kind_check CHECK (kind IN ('agent', 'binary', 'script', 'vm-image', 'operator'));
ALTER TABLE rollouts ADD COLUMN IF NOT EXISTS schema_pre_applied_at timestamptz;
ALTER TABLE rollouts ADD COLUMN IF NOT EXISTS schema_post_applied_at timestamptz;
-- "Roll back one region" (runbook 001): a rollback limited to these regions returns only their
-- completed nodes (null: every region).
ALTER TABLE rollouts ADD COLUMN IF NOT EXISTS rollback_regions text[];
-- Whether a replica's build tolerates a newer build's expand migrations (tables and columns it
-- does not know). A control-plane rollout applies the target's expand only when every live
-- replica says so. Builds of older drydock versions write no value: they follow the rule.
ALTER TABLE operator_replicas ADD COLUMN IF NOT EXISTS tolerates_expand boolean NOT NULL DEFAULT true;
