-- TOTP (RFC 6238) as a second factor, and its recovery codes.

CREATE TABLE totp_credentials (
    user_id       TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,
    -- The last time step accepted: a code is never accepted twice.
    last_step     INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE recovery_codes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   INTEGER
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);
