-- At most one active occurrence per alarm point, whatever the number of instances evaluating: a second raise of
-- the same point fails instead of opening a duplicate.
CREATE UNIQUE INDEX alarms_one_active_per_point ON alarms (asset_id, attribute, rule) WHERE active;
