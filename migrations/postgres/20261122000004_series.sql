-- The series registry: one time series per time-series attribute of an asset, created when its first reading
-- arrives. Readings live in the time-series store under this id; moving or renaming the asset keeps them.
CREATE TABLE series (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset_id    BIGINT NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    attribute   TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX series_asset_attribute ON series (asset_id, attribute);
