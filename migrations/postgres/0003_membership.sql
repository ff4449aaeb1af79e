-- CONTRACT §9: members and their roles, bans, and one direct-message room per pair: the
-- same schema as migrations/sqlite/0003_membership.sql. Rooms made before it have no
-- members and no owner; their messages are untouched.

-- A DM's two user ids, "low:high", so a pair has one room whoever opens it and however
-- many ask at once. NULL for other rooms (a unique index allows many NULLs).
ALTER TABLE rooms ADD COLUMN dm_key TEXT;
CREATE UNIQUE INDEX rooms_dm_key ON rooms (dm_key);

-- The room list's order (adapters/sql.rs ROOM_LIST_ORDER, written the same): a user's list
-- reads the newest rooms it may see and stops, instead of sorting every room per request.
CREATE INDEX rooms_by_activity ON rooms ((COALESCE(last_message_at, created_at)) DESC, id DESC);

-- Membership lasts until the member leaves or is removed (it is not presence): one row
-- per user and room, written when they join, never per connection.
CREATE TABLE memberships (
    room_id   BIGINT      NOT NULL REFERENCES rooms (id),
    user_id   BIGINT      NOT NULL REFERENCES users (id),
    role      TEXT        NOT NULL CHECK (role IN ('owner', 'moderator', 'member')),
    joined_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
-- "my rooms": a user's memberships without scanning every room's
CREATE INDEX memberships_user ON memberships (user_id, room_id);

CREATE TABLE bans (
    room_id   BIGINT      NOT NULL REFERENCES rooms (id),
    user_id   BIGINT      NOT NULL REFERENCES users (id),
    banned_by BIGINT      NOT NULL REFERENCES users (id),
    banned_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
