-- CONTRACT §10: edits, deletes, reactions, replies, and the room's revision `rev`.

-- The room's revision: rises by 1 in the transaction of every change to its messages, a
-- new message included. Before this migration every message was one change: rev = seq.
ALTER TABLE rooms ADD COLUMN last_rev INTEGER NOT NULL DEFAULT 0;
UPDATE rooms SET last_rev = last_seq;

-- The room's rev at the message's latest change. (SQLite adds a NOT NULL column only with
-- a default; every insert gives its own rev, and the unique index refuses a second 0.)
ALTER TABLE messages ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET rev = seq;
-- `updates after_rev` is one range read of this index.
CREATE UNIQUE INDEX messages_room_rev ON messages (room_id, rev);

ALTER TABLE messages ADD COLUMN edited_at INTEGER;
-- Who deleted it. A deleted message keeps its row (seq has no gap) with body '': its text
-- is overwritten in the delete's own transaction, never hidden behind a flag.
ALTER TABLE messages ADD COLUMN deleted_by INTEGER REFERENCES users (id);
-- The message it replies to; the excerpt is read from that message as it is now, so no
-- copy of its text is kept here.
ALTER TABLE messages ADD COLUMN reply_to INTEGER REFERENCES messages (id);

-- One row per (message, user, emoji): a repeated reaction cannot count twice. `id` orders
-- a message's emoji by their first reaction.
CREATE TABLE reactions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES messages (id),
    user_id    INTEGER NOT NULL REFERENCES users (id),
    emoji      TEXT    NOT NULL,
    reacted_at INTEGER NOT NULL,
    UNIQUE (message_id, user_id, emoji)
);
