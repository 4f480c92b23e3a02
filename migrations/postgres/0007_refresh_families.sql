-- Revocation state per refresh-token family and per account, so that a rotation racing a
-- revocation cannot leave a live successor: revocations mark the family (or move the
-- account's sign-in epoch), which every token of the family, present or future, is checked against
-- in the statement that spends it and the one that inserts its successor.
-- refresh_tokens.revoked is no longer written: the family's flag replaces it.
CREATE TABLE refresh_families (
    family_id  TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
    -- The SSO session the family is bound to; NULL for offline_access.
    session_id TEXT,
    -- When the user authenticated for the grant (unix seconds).
    auth_time  BIGINT NOT NULL,
    -- The account's sign-in epoch that the grant's sign-in saw: the family lives while it is
    -- still the account's.
    epoch      BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    revoked    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);
CREATE INDEX refresh_families_session ON refresh_families (session_id);

-- Existing families: revoked if any of their tokens was (a successor that escaped a racing
-- revocation dies with its family now); authenticated no later than their first token.
INSERT INTO refresh_families (family_id, user_id, client_id, session_id, auth_time, created_at, revoked)
SELECT family_id, MIN(user_id), MIN(client_id), MIN(session_id), MIN(issued_at), MIN(issued_at), MAX(revoked)
FROM refresh_tokens GROUP BY family_id;

-- The account's sign-in epoch: moved forward (strictly) by a password reset, a disabled
-- account and the end of all its sessions. A session records the epoch its sign-in saw when
-- the credentials were checked, so a sign-in that checked the old password and finished after
-- the reset is void, whatever the timing; families started from it are refused.
ALTER TABLE users ADD COLUMN sign_in_epoch BIGINT NOT NULL DEFAULT 0;