-- Accounts, sessions, rooms and messages: the same schema as migrations/sqlite/0001_init.sql.
-- Times are TIMESTAMPTZ; the adapter writes them truncated to the millisecond, so they
-- round-trip exactly as the SQLite store's milliseconds do.

CREATE TABLE users (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT        NOT NULL,
    -- lower-cased username: names are unique case-insensitively
    username_key  TEXT        NOT NULL UNIQUE,
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE sessions (
    -- SHA-256 of the cookie's token; the token itself is never stored
    token_hash BYTEA       PRIMARY KEY,
    user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE rooms (
    id              BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug            TEXT        NOT NULL UNIQUE,
    name            TEXT        NOT NULL,
    -- the seq of the room's newest message; incremented in the message's own transaction,
    -- whose row lock serialises the room's appends
    last_seq        BIGINT      NOT NULL DEFAULT 0,
    last_message_at TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE messages (
    id        BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id   BIGINT      NOT NULL REFERENCES rooms (id),
    seq       BIGINT      NOT NULL,
    user_id   BIGINT      NOT NULL REFERENCES users (id),
    body      TEXT        NOT NULL,
    client_id TEXT,
    sent_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (room_id, seq)
);
CREATE UNIQUE INDEX messages_user_client_id ON messages (user_id, client_id) WHERE client_id IS NOT NULL;
