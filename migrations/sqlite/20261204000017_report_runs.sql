-- A report's runs: on demand (requested_by, a user) or due by its schedule (scheduled_for, the due time; one run
-- per report and due time, which is how instances agree that a due time is taken). A run is claimed by the
-- instance that works it out (holder, until lease_until, renewed while it runs), so a dead instance's run is taken
-- over; not_before holds a retry back. Files are written under the files folder, one folder per run.
CREATE TABLE report_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id     BIGINT NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    requested_by  BIGINT,
    requester     TEXT NOT NULL,
    scheduled_for BIGINT,
    range_from    BIGINT NOT NULL,
    range_to      BIGINT NOT NULL,
    status        TEXT NOT NULL,
    progress      INTEGER NOT NULL DEFAULT 0,
    message       TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    holder        TEXT,
    lease_until   BIGINT,
    not_before    BIGINT NOT NULL,
    formats       TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    finished_at   BIGINT
);
CREATE UNIQUE INDEX report_runs_due ON report_runs (report_id, scheduled_for);
CREATE INDEX report_runs_pending ON report_runs (status, not_before);
