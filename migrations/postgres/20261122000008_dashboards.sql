-- Dashboards: a grid of panels (JSON), personal to their owner or shared with everyone who may view. Shared ones
-- travel in the model file, matched by name. owner_id is null for dashboards made by the command line.
CREATE TABLE dashboards (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL,
    owner_id    BIGINT,
    owner       TEXT NOT NULL,
    shared      BOOLEAN NOT NULL,
    panels      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX dashboards_shared_name ON dashboards (name) WHERE shared;
CREATE INDEX dashboards_owner ON dashboards (owner_id);
