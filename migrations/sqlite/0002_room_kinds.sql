-- CONTRACT §9: every room has a kind. Rooms made before it are public.
ALTER TABLE rooms ADD COLUMN kind TEXT NOT NULL DEFAULT 'public'
    CHECK (kind IN ('public', 'private', 'dm'));
