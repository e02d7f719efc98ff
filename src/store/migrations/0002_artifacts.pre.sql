-- Signed artifacts, their bytes, and which version each node should run.

-- Bytes live in Postgres, content-addressed, so every operator replica serves every artifact.
-- An upload streams in before its digest is known: its chunks are written under a staging
-- key ("upload:<uuid>") and renamed to the sha256 when the upload completes.
CREATE TABLE blobs (
  sha256     text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  size       bigint NOT NULL CHECK (size >= 0),
  chunks     integer NOT NULL CHECK (chunks >= 0),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE blob_chunks (
  blob_key   text NOT NULL,
  seq        integer NOT NULL CHECK (seq >= 0),
  data       bytea NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (blob_key, seq)
);
-- Artifacts are mostly compressed archives: trying pglz on every chunk only burns CPU.
ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE artifacts (
  id         text PRIMARY KEY,
  component  text NOT NULL,
  version    text NOT NULL,
  kind       text NOT NULL CHECK (kind IN ('agent', 'binary', 'script')),
  sha256     text NOT NULL REFERENCES blobs (sha256),
  size       bigint NOT NULL CHECK (size >= 0),
  -- base64 ed25519 signature of artifactSigningMessage(); NULL for an unsigned draft.
  signature  text,
  key_id     text,
  disruptive boolean NOT NULL DEFAULT false,
  lifecycle  text NOT NULL DEFAULT 'draft' CHECK (lifecycle IN ('draft', 'blessed', 'live', 'archived')),
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (component, version)
);

-- The version each node should run, per component (the desired state the agent converges to).
CREATE TABLE node_components (
  node_id          text NOT NULL REFERENCES nodes (id),
  component        text NOT NULL,
  version          text NOT NULL,
  artifact_id      text NOT NULL REFERENCES artifacts (id),
  -- What the node ran before this desired version: the version a rollback returns to.
  previous_version text,
  -- Only an explicit rollback lets the agent install a lower version.
  rollback         boolean NOT NULL DEFAULT false,
  force            boolean NOT NULL DEFAULT false,
  updated_by       text NOT NULL,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node_id, component)
);
CREATE INDEX node_components_artifact ON node_components (artifact_id);

-- The latest install report of each node and component, as its agent's heartbeats carry it.
CREATE TABLE node_installs (
  node_id          text NOT NULL REFERENCES nodes (id),
  component        text NOT NULL,
  version          text NOT NULL,
  previous_version text,
  phase            text NOT NULL CHECK (phase IN ('downloading', 'verifying', 'installing', 'assessing', 'done', 'failed', 'reverted')),
  reason           text,
  -- The agent's own clock for the phase change; updated_at is ours.
  reported_at      text NOT NULL,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node_id, component)
);
