-- user_seq numbers a user's events 1, 2, 3, ... in commit order, so a
-- client resuming after event n misses none whatever the writers' clocks
-- said (created_at is stamped before commit, by each process's clock).
-- 0 marks events without a number (imports, rows written before this
-- migration); they come first in a user's order, by (created_at, id).
ALTER TABLE events ADD COLUMN user_seq INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX events_user_seq_unique ON events (user_id, user_seq) WHERE user_seq > 0;
-- A user's order: LatestEvents and UserEventsAfter.
DROP INDEX events_user_order;
CREATE INDEX events_user_seq ON events (user_id, user_seq, created_at, id);
