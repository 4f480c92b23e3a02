-- TOTP (RFC 6238) as a second factor, and its recovery codes.

CREATE TABLE totp_credentials (
    user_id       TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,
    -- The last time step accepted: a code is never accepted twice.
    last_step     BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    id        BIGSERIAL PRIMARY KEY,
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);
