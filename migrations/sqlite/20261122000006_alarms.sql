-- Alarms: rules of single assets (template rules live in the templates' attribute JSON), the state of every alarm
-- point (asset, attribute, rule), occurrences with their comments, and webhooks with a durable delivery outbox.
CREATE TABLE asset_alarm_rules (
    asset_id    INTEGER PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
    rules       TEXT NOT NULL DEFAULT '[]',
    updated_at  INTEGER NOT NULL
);

CREATE TABLE alarm_points (
    asset_id        INTEGER NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    attribute       TEXT NOT NULL,
    rule            TEXT NOT NULL,
    condition       TEXT NOT NULL DEFAULT 'normal',
    since_ms        INTEGER,
    value           REAL,
    occurrence_id   INTEGER,
    shelved_until   INTEGER,
    shelved_by      TEXT,
    out_of_service  INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (asset_id, attribute, rule)
);

CREATE TABLE alarms (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    asset_id         INTEGER NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    attribute        TEXT NOT NULL,
    rule             TEXT NOT NULL,
    severity         TEXT NOT NULL,
    message          TEXT NOT NULL,
    unit             TEXT,
    active           INTEGER NOT NULL,
    acknowledged     INTEGER NOT NULL DEFAULT 0,
    started_at       INTEGER NOT NULL,
    start_value      REAL,
    ended_at         INTEGER,
    end_value        REAL,
    acknowledged_at  INTEGER,
    acknowledged_by  TEXT,
    renotify_ms      INTEGER,
    notified_at      INTEGER NOT NULL
);
CREATE INDEX alarms_started ON alarms (started_at);
CREATE INDEX alarms_open ON alarms (active, acknowledged);
CREATE INDEX alarms_point ON alarms (asset_id, attribute, rule);

CREATE TABLE alarm_comments (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id  INTEGER NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
    author    TEXT NOT NULL,
    at        INTEGER NOT NULL,
    text      TEXT NOT NULL
);
CREATE INDEX alarm_comments_alarm ON alarm_comments (alarm_id);

CREATE TABLE webhooks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    url           TEXT NOT NULL,
    secret        TEXT NOT NULL,
    min_severity  TEXT,
    created_at    INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               TEXT NOT NULL,
    webhook_id       INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    alarm_id         INTEGER NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    locked_until     INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER,
    PRIMARY KEY (webhook_id, id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
