-- The setup page's one-time tokens (SHA-256), one per instance that started while no account existed: any of them
-- opens setup on any instance, and the first setup consumes them all.
CREATE TABLE setup_tokens (
    hash       TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);
