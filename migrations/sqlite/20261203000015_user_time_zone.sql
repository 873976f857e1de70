-- Each user's time zone (an IANA name such as Europe/Berlin); NULL: the browser's own. Pages show instants in it.
-- Added, never renamed (expand/contract): an older instance ignores the column.
ALTER TABLE users ADD COLUMN time_zone TEXT;
