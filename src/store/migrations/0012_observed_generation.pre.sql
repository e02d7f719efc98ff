-- The desired generation each node's agent last said it has (its heartbeat's `generation`): a
-- node whose observed generation is below its generation has not seen its desired state yet.
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS observed_generation bigint;
