-- The series registry: one time series per time-series attribute of an asset, created when its first reading
-- arrives. Readings live in the time-series store under this id; moving or renaming the asset keeps them.
CREATE TABLE series (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    asset_id    INTEGER NOT NULL REFERENCES assets (id) ON DELETE CASCADE,
    attribute   TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX series_asset_attribute ON series (asset_id, attribute);
