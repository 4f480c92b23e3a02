-- Certificate login: an account is found by the national identifier its card carries.
CREATE TABLE certificate_bindings (
    national_id TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL
);
CREATE INDEX certificate_bindings_user ON certificate_bindings (user_id);
