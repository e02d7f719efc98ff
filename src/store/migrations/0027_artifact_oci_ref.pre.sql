-- An os-image artifact may be a reference to an OCI registry (issue 12, item 1) instead of an
-- uploaded file: `ref` is `oci://HOST[:PORT]/REPO:TAG` (or `@sha256:…`), `sha256` the signed
-- digest of the image blob the agent fetches from that registry and checks, and no bytes are
-- stored here (size 0). So the digest no longer always names a stored blob: the foreign key goes;
-- an uploaded artifact still commits its blob in the same transaction (routes/artifacts.ts).
ALTER TABLE artifacts ADD COLUMN IF NOT EXISTS ref text;
ALTER TABLE artifacts DROP CONSTRAINT IF EXISTS artifacts_sha256_fkey;
ALTER TABLE artifacts DROP CONSTRAINT IF EXISTS artifacts_ref_kind_check;
ALTER TABLE artifacts ADD CONSTRAINT artifacts_ref_kind_check CHECK (ref IS NULL OR (kind = 'os-image' AND size = 0));
