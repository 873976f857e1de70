-- Accounts: users, their subtree grants, API tokens, and the audit log. Times are milliseconds since the Unix epoch.
CREATE TABLE users (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    username            TEXT NOT NULL,
    display_name        TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    role                TEXT NOT NULL CHECK (role IN ('admin', 'engineer', 'operator', 'viewer')),
    enabled             INTEGER NOT NULL DEFAULT 1,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    last_login_at       INTEGER,
    -- Bumped when the password changes or the account is disabled: sessions from before stop authenticating.
    session_epoch       INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

-- A user with grants sees only those asset subtrees; a user without any sees the whole plant.
CREATE TABLE user_grants (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    asset_id INTEGER NOT NULL,
    PRIMARY KEY (user_id, asset_id)
);

CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- SHA-256 of the token: tokens carry 256 random bits, so a fast hash is as safe as a slow one here.
    token_hash    TEXT NOT NULL UNIQUE,
    -- The first characters, to tell tokens apart in lists.
    prefix        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    actor_id     INTEGER,
    actor_name   TEXT,
    source       TEXT,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT,
    diff         TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
