-- Alarms: rules of single assets (template rules live in the templates' attribute JSON), the state of every alarm
-- point (asset, attribute, rule), occurrences with their comments, and webhooks with a durable delivery outbox.
CREATE TABLE asset_alarm_rules (
    asset_id    BIGINT PRIMARY KEY REFERENCES assets (id) ON DELETE CASCADE,
    rules       TEXT NOT NULL DEFAULT '[]',
    updated_at  BIGINT NOT NULL
);

CREATE TABLE alarm_points (
    asset_id        BIGINT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    attribute       TEXT NOT NULL,
    rule            TEXT NOT NULL,
    condition       TEXT NOT NULL DEFAULT 'normal',
    since_ms        BIGINT,
    value           DOUBLE PRECISION,
    occurrence_id   BIGINT,
    shelved_until   BIGINT,
    shelved_by      TEXT,
    out_of_service  BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (asset_id, attribute, rule)
);

CREATE TABLE alarms (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset_id         BIGINT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    attribute        TEXT NOT NULL,
    rule             TEXT NOT NULL,
    severity         TEXT NOT NULL,
    message          TEXT NOT NULL,
    unit             TEXT,
    active           BOOLEAN NOT NULL,
    acknowledged     BOOLEAN NOT NULL DEFAULT FALSE,
    started_at       BIGINT NOT NULL,
    start_value      DOUBLE PRECISION,
    ended_at         BIGINT,
    end_value        DOUBLE PRECISION,
    acknowledged_at  BIGINT,
    acknowledged_by  TEXT,
    renotify_ms      BIGINT,
    notified_at      BIGINT NOT NULL
);
CREATE INDEX alarms_started ON alarms (started_at);
CREATE INDEX alarms_open ON alarms (active, acknowledged);
CREATE INDEX alarms_point ON alarms (asset_id, attribute, rule);

CREATE TABLE alarm_comments (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alarm_id  BIGINT NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
    author    TEXT NOT NULL,
    at        BIGINT NOT NULL,
    text      TEXT NOT NULL
);
CREATE INDEX alarm_comments_alarm ON alarm_comments (alarm_id);

CREATE TABLE webhooks (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT NOT NULL,
    url           TEXT NOT NULL,
    secret        TEXT NOT NULL,
    min_severity  TEXT,
    created_at    BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               TEXT NOT NULL,
    webhook_id       BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    alarm_id         BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    locked_until     BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT,
    PRIMARY KEY (webhook_id, id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
