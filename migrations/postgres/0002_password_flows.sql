-- Password flows: forced change, history, and the durable mail outbox.

ALTER TABLE users ADD COLUMN password_expired BIGINT NOT NULL DEFAULT 0;

CREATE TABLE password_history (
    id         BIGSERIAL PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX password_history_user ON password_history (user_id, id);

-- Mail a flow accepted is never lost: it waits here until the SMTP server takes it.
CREATE TABLE mail_outbox (
    id            BIGSERIAL PRIMARY KEY,
    to_addr       TEXT NOT NULL,
    subject       TEXT NOT NULL,
    text_body     TEXT NOT NULL,
    html_body     TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_attempt  BIGINT NOT NULL,
    sent_at       BIGINT,
    last_error    TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox (sent_at, next_attempt);
