-- Accounts: users, their subtree grants, API tokens, and the audit log. Times are milliseconds since the Unix epoch.
CREATE TABLE users (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username            TEXT NOT NULL,
    display_name        TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    role                TEXT NOT NULL CHECK (role IN ('admin', 'engineer', 'operator', 'viewer')),
    enabled             BOOLEAN NOT NULL DEFAULT TRUE,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    last_login_at       BIGINT,
    -- Bumped when the password changes or the account is disabled: sessions from before stop authenticating.
    session_epoch       BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

-- A user with grants sees only those asset subtrees; a user without any sees the whole plant.
CREATE TABLE user_grants (
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    asset_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, asset_id)
);

CREATE TABLE api_tokens (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- SHA-256 of the token: tokens carry 256 random bits, so a fast hash is as safe as a slow one here.
    token_hash    TEXT NOT NULL UNIQUE,
    -- The first characters, to tell tokens apart in lists.
    prefix        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE audit_log (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor_id     BIGINT,
    actor_name   TEXT,
    source       TEXT,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT,
    diff         TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
