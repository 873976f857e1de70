-- Sign-in attempts of the last minute, shared by every instance: the login throttle (server/src/auth/throttle.rs)
-- counts here, so an attacker spread over several instances gets no more guesses than one instance allows.
CREATE TABLE login_attempts (
    account TEXT NOT NULL,
    client  TEXT NOT NULL,
    at      BIGINT NOT NULL
);
CREATE INDEX login_attempts_pair ON login_attempts (account, client, at);
CREATE INDEX login_attempts_at ON login_attempts (at);
