-- Region gates (strategy.gateBetweenRegions): the last batch whose gate a person approved, so a
-- rollout resumed after its gate does not stop at the same one again.
ALTER TABLE rollouts ADD COLUMN IF NOT EXISTS gate_passed_batch integer NOT NULL DEFAULT -1;
