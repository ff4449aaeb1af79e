-- CONTRACT §11: read markers and mentions, from which unread counts are counted exactly.

-- A member's read marker: the last seq they have read. It starts at the room's last seq
-- when they become a member (joining never makes old history unread) and never moves back.
-- Members before this migration start at their room's last seq.
ALTER TABLE memberships ADD COLUMN read_seq INTEGER NOT NULL DEFAULT 0;
UPDATE memberships SET read_seq = (SELECT last_seq FROM rooms WHERE rooms.id = memberships.room_id);

-- The two rules that move a marker without being asked live here, so every way of adding a
-- member or a message keeps them: a new member has read everything so far, and a sender
-- has read the room up to what they send.
CREATE TRIGGER memberships_start_read AFTER INSERT ON memberships
BEGIN
    UPDATE memberships SET read_seq = (SELECT last_seq FROM rooms WHERE id = NEW.room_id)
    WHERE room_id = NEW.room_id AND user_id = NEW.user_id;
END;
CREATE TRIGGER messages_sender_has_read AFTER INSERT ON messages
BEGIN
    UPDATE memberships SET read_seq = max(read_seq, NEW.seq)
    WHERE room_id = NEW.room_id AND user_id = NEW.user_id;
END;

-- Who a message mentions (users who can read the room, never its sender): written with
-- the message and with each edit, deleted with its text. `room_id` and `seq` are the
-- message's, so a member's mention count is one range of the index below.
CREATE TABLE mentions (
    message_id INTEGER NOT NULL REFERENCES messages (id),
    user_id    INTEGER NOT NULL REFERENCES users (id),
    room_id    INTEGER NOT NULL REFERENCES rooms (id),
    seq        INTEGER NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX mentions_by_user ON mentions (user_id, room_id, seq);
