-- Optimistic concurrency: every write of a template, an asset or a dashboard bumps its version, and a write that
-- names the version it read is refused (409) when another write came first. Added columns only (expand).
ALTER TABLE templates ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE assets ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE dashboards ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
