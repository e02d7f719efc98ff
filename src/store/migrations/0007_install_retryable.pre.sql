-- Whether the agent retries a failed install by itself (a download error), as its report says
-- (`retryable`). NULL: a report without the flag, from an agent older than the flag; the
-- rollout then falls back to the wording of its reason (task-machine.ts). Adding a nullable
-- column is safe for the previous binary, which never names it.
ALTER TABLE node_installs ADD COLUMN IF NOT EXISTS retryable boolean;
