-- Reply fragments shared between instances (responder.Deltas): written by
-- the dispatcher's relay, read by every instance's stream feed in
-- (created_at, id) order, pruned by age. One row per (execution, index):
-- a repeat after a hand-off is dropped by the primary key.
CREATE TABLE responder_deltas (
	execution_id TEXT NOT NULL,
	idx          INTEGER NOT NULL,
	id           TEXT NOT NULL,
	user_id      TEXT NOT NULL,
	outbox_id    TEXT NOT NULL DEFAULT '',
	text         TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	PRIMARY KEY (execution_id, idx)
) WITHOUT ROWID;
CREATE INDEX responder_deltas_order ON responder_deltas (created_at, id);
