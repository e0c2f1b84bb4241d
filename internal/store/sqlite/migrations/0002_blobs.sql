-- Blobs: binary objects a user owns (the audio of spoken replies).
CREATE TABLE blobs (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    content_type TEXT NOT NULL,
    data         BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);
