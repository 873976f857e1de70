-- The plant model: templates (single inheritance; attribute templates as a JSON array) and the asset tree.
CREATE TABLE templates (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT NOT NULL,
    base_id         INTEGER REFERENCES templates (id),
    description     TEXT NOT NULL DEFAULT '',
    naming_pattern  TEXT,
    categories      TEXT NOT NULL DEFAULT '[]',
    attributes      TEXT NOT NULL DEFAULT '[]',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX templates_name_key ON templates (lower(name));

CREATE TABLE assets (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id    INTEGER REFERENCES assets (id),
    name         TEXT NOT NULL,
    template_id  INTEGER REFERENCES templates (id),
    description  TEXT NOT NULL DEFAULT '',
    labels       TEXT NOT NULL DEFAULT '[]',
    attributes   TEXT NOT NULL DEFAULT '[]',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
-- Siblings have unique names; roots (no parent) count as siblings of each other.
CREATE UNIQUE INDEX assets_sibling_name ON assets (COALESCE(parent_id, 0), name);
CREATE INDEX assets_parent ON assets (parent_id);
CREATE INDEX assets_template ON assets (template_id);
