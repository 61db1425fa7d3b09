-- User owns profiles (what a person shows and prefers) and their uploaded
-- avatars. Credentials and roles stay with Auth; `user_id` is Auth's account
-- id, handed over by user.v1.provision when the account is registered.
CREATE TABLE "user".profiles (
    user_id      uuid PRIMARY KEY,
    email        text NOT NULL,
    display_name text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 80),
    avatar_url   text CHECK (avatar_url LIKE 'https://%'),
    preferences  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(preferences) = 'object'),
    locale       text,
    timezone     text,
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- the admin listing pages by (created_at, user_id)
CREATE INDEX profiles_by_created ON "user".profiles (created_at, user_id);

-- One avatar per profile; the type is what the bytes are (sniffed), never
-- what the client claimed, and the ETag is the SHA-256 of the bytes.
CREATE TABLE "user".avatars (
    user_id      uuid PRIMARY KEY REFERENCES "user".profiles (user_id) ON DELETE CASCADE,
    content_type text NOT NULL CHECK (content_type IN ('image/png', 'image/jpeg', 'image/webp')),
    data         bytea NOT NULL CHECK (octet_length(data) BETWEEN 1 AND 524288),
    sha256       text NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
