-- Per-node agent credentials (DESIGN.md §9): issued at registration, kept by the agent, stored
-- here only as a sha256. With auth on, a heartbeat or long-poll must carry its own node's.
ALTER TABLE nodes ADD COLUMN credential_hash text;
