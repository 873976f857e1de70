-- Reports: a definition (scope, time range, time zone, sections) as JSON, named uniquely, owned by who made it
-- (owner_id null: made by the command line). Versioned like the other writable objects.
CREATE TABLE reports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    owner_id    BIGINT,
    owner       TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);
