-- Preflight fed by real data (issue 12): storage and backup systems report an instance's volume
-- health and backup/snapshot/restore activity, each with an expiry, so a report nobody renews
-- stops blocking plans by itself.
ALTER TABLE instances ADD COLUMN IF NOT EXISTS volume_expires_at timestamptz;
ALTER TABLE instances ADD COLUMN IF NOT EXISTS activity_expires_at timestamptz;
