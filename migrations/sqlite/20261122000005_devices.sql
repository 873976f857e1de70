-- Devices: identities that send readings, each bound to an asset, with a map from its field names to the asset's
-- attributes (JSON object; unmapped fields go to the attribute of the same name). Tokens are stored as SHA-256;
-- a token may write for one device or, as a gateway token, for several.
CREATE TABLE devices (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    asset_id      INTEGER NOT NULL REFERENCES assets (id),
    description   TEXT NOT NULL DEFAULT '',
    field_map     TEXT NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_seen_at  INTEGER
);
CREATE UNIQUE INDEX devices_name_key ON devices (name);
CREATE INDEX devices_asset ON devices (asset_id);

CREATE TABLE device_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE UNIQUE INDEX device_tokens_hash ON device_tokens (token_hash);

CREATE TABLE device_token_devices (
    token_id   INTEGER NOT NULL REFERENCES device_tokens (id) ON DELETE CASCADE,
    device_id  INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, device_id)
);
CREATE INDEX device_token_devices_device ON device_token_devices (device_id);
