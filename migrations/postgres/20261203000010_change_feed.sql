-- The audit log is also the change feed (server/src/changes.rs): every instance follows it to keep its caches
-- current. This wakes the followers as soon as a row commits; the table stays the truth (they also look every
-- second, so a lost notification delays, never loses, an invalidation).
CREATE FUNCTION gantry_audit_appended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gantry_changes', NEW.id::text);
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_log_appended AFTER INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION gantry_audit_appended();
