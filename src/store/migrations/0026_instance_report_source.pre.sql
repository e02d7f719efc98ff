-- Who set an instance's volume and activity (issue 12, item 4): `api` (PUT …/volume, …/activity
-- by a storage or backup system, with an expiry) or `agent` (the workload's own report in its
-- heartbeat, no expiry: it holds while the agent repeats it). An agent that reports nothing
-- clears only what it set; an API value that has not expired wins over the agent's.
ALTER TABLE instances ADD COLUMN IF NOT EXISTS volume_source text CHECK (volume_source IN ('api', 'agent'));
ALTER TABLE instances ADD COLUMN IF NOT EXISTS activity_source text CHECK (activity_source IN ('api', 'agent'));
-- Every value stored before this came through the API.
UPDATE instances SET volume_source = 'api' WHERE volume IS NOT NULL AND volume_source IS NULL;
UPDATE instances SET activity_source = 'api' WHERE activity IS NOT NULL AND activity_source IS NULL;
