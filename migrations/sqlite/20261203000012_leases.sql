-- Claimed work (server/src/leases.rs): a lease names one piece of work exactly one instance does at a time (an
-- alarm partition, retention) and the instance holding it until `until_ms`; instances also announce themselves
-- with a lease of their own, so each knows how many are alive.
CREATE TABLE leases (
    name     TEXT PRIMARY KEY,
    holder   TEXT NOT NULL,
    until_ms INTEGER NOT NULL
);

-- The newest sample each alarm point evaluated: an instance that takes a point over replays readings after it.
ALTER TABLE alarm_points ADD COLUMN last_ts INTEGER;
ALTER TABLE alarm_points ADD COLUMN last_value REAL;
