-- Auth owns accounts (credentials and roles), sessions (refresh-token
-- chains) and the failed-login log used for lockouts.
CREATE TABLE auth.users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    display_name  text NOT NULL,
    roles         text[] NOT NULL DEFAULT ARRAY['user'],
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- One session per login: a chain of refresh tokens, each used once.
CREATE TABLE auth.sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    revoke_reason text
);
CREATE INDEX sessions_live_by_user ON auth.sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_revoked_at ON auth.sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Refresh tokens are stored as SHA-256 digests, never in the clear.
CREATE TABLE auth.refresh_tokens (
    token_hash text PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES auth.sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_by_session ON auth.refresh_tokens (session_id);

-- Failed logins per account (keyed by a digest of the e-mail), for lockouts.
CREATE TABLE auth.login_failures (
    email_hash text NOT NULL,
    failed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failures_by_email ON auth.login_failures (email_hash, failed_at);
