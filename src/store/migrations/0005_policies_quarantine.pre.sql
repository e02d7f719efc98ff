-- Operator-side policies the rollout spec cannot weaken (DESIGN.md §4, §9), and versions the
-- circuit breaker rolled back, quarantined until someone with the approver role clears them.

-- One row per named policy; `document` is the policy as validated by domain/rollout/policy.ts.
CREATE TABLE policies (
  name       text PRIMARY KEY,
  document   jsonb NOT NULL,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_by text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The policies that strengthened a rollout's spec when it was created (or re-planned at approval).
ALTER TABLE rollouts ADD COLUMN policies jsonb NOT NULL DEFAULT '[]';

-- Cleared rows stay (who quarantined, who cleared and why is audit history); at most one open
-- quarantine per component version.
CREATE TABLE quarantine (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  component      text NOT NULL,
  version        text NOT NULL,
  rollout_id     text REFERENCES rollouts (id),
  reason         text NOT NULL,
  quarantined_by text NOT NULL,
  quarantined_at timestamptz NOT NULL DEFAULT now(),
  cleared_by     text,
  cleared_at     timestamptz,
  clear_reason   text
);
CREATE UNIQUE INDEX quarantine_one_open ON quarantine (component, version) WHERE cleared_at IS NULL;
