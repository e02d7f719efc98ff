-- Dashboard sessions (DESIGN.md §9): a person logs in with a token once and then holds an
-- HttpOnly cookie. Only the sha256 of the cookie's value is stored, so a database dump holds no
-- usable session; the CSRF token is sent back in a header on every state-changing request.
CREATE TABLE IF NOT EXISTS ui_sessions (
  id_sha256  text PRIMARY KEY,
  principal  text NOT NULL,
  role       text NOT NULL,
  csrf_token text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ui_sessions_expires_at ON ui_sessions (expires_at);
