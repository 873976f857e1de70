-- "The whole plant" is said explicitly: a user without grants used to see everything, so removing a user's last
-- grant widened their access. Users who had no grants keep the whole plant; from now on an empty list is nothing.
ALTER TABLE users ADD COLUMN whole_plant INTEGER NOT NULL DEFAULT 0;
UPDATE users SET whole_plant = 1 WHERE id NOT IN (SELECT user_id FROM user_grants);
