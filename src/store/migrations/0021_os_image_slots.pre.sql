-- Reboot-class components (DESIGN.md §12): artifacts of kind `os-image` are images the agent
-- stages into one of its node's A/B slots and boots into; `reboot` says installing one reboots
-- the node (true for every os-image, false for every other kind: the API refuses anything else).
ALTER TABLE artifacts DROP CONSTRAINT IF EXISTS artifacts_kind_check;
ALTER TABLE artifacts ADD CONSTRAINT artifacts_kind_check CHECK (kind IN ('agent', 'binary', 'script', 'vm-image', 'operator', 'os-image'));
ALTER TABLE artifacts ADD COLUMN IF NOT EXISTS reboot boolean NOT NULL DEFAULT false;
ALTER TABLE artifacts DROP CONSTRAINT IF EXISTS artifacts_reboot_kind_check;
ALTER TABLE artifacts ADD CONSTRAINT artifacts_reboot_kind_check CHECK (reboot = (kind = 'os-image'));
-- A pre-staged install (downloaded, verified, in the inactive slot, nothing switched).
ALTER TABLE node_installs DROP CONSTRAINT IF EXISTS node_installs_phase_check;
ALTER TABLE node_installs ADD CONSTRAINT node_installs_phase_check
  CHECK (phase IN ('downloading', 'verifying', 'installing', 'staged', 'assessing', 'done', 'failed', 'reverted'));
-- The node's A/B slots as its agent's heartbeats report them ({a:{version}, b:{version}, active,
-- next, tries_left}); null until the node stages an os-image.
ALTER TABLE nodes ADD COLUMN IF NOT EXISTS boot_slots jsonb;
-- Pre-staging (DESIGN.md §12): the node downloads, verifies and stages this version only (into
-- its inactive slot) and reports `staged`; the install itself follows once this turns false.
ALTER TABLE node_components ADD COLUMN IF NOT EXISTS prestage boolean NOT NULL DEFAULT false;
