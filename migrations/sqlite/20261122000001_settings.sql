-- Installation-wide settings as key/value pairs (later: setup state, feature switches).
CREATE TABLE settings (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

INSERT INTO settings (key, value) VALUES ('installed_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
