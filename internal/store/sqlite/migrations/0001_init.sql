-- Astra's domain tables. Times are integer Unix milliseconds UTC; an
-- optional time that is unset is NULL, except outbox.available_at where 0
-- means "no hold" so the claim predicate stays one comparison. ids are the
-- 24-hex strings of responder.NewID. There are no foreign keys between the
-- domain tables: the MongoDB backend cannot enforce them, and both backends
-- must accept the same writes.

CREATE TABLE outbox (
	id            TEXT PRIMARY KEY,
	user_id       TEXT NOT NULL,
	julep_user_id TEXT NOT NULL DEFAULT '',
	content       TEXT NOT NULL,
	status        TEXT NOT NULL,
	metadata      TEXT,            -- JSON object, NULL when the message has none
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	attempts      INTEGER NOT NULL DEFAULT 0,
	lease_owner   TEXT NOT NULL DEFAULT '',
	lease_until   INTEGER,
	available_at  INTEGER NOT NULL DEFAULT 0,
	execution_id  TEXT NOT NULL DEFAULT '',
	last_error    TEXT NOT NULL DEFAULT '',
	delivered_at  INTEGER
) WITHOUT ROWID;

-- Claim walks the rows still in play oldest first and takes the first one
-- that is claimable; the index covers the claim predicate, and delivered and
-- failed rows, which are nearly all of them, are not in it at all. The claim
-- query names it (INDEXED BY) so the plan cannot drift to a sort.
CREATE INDEX outbox_claim ON outbox (created_at, id, status, available_at, lease_until)
	WHERE status IN ('pending', 'processing');
-- NextAvailable: the earliest hold among pending rows.
CREATE INDEX outbox_available ON outbox (status, available_at, created_at);
-- UserMessages, newest first.
CREATE INDEX outbox_user ON outbox (user_id, created_at, id);

-- seq is the rowid (storage order); the documented order of events is
-- (created_at, id), and every index below that serves a cursor ends in it.
CREATE TABLE events (
	seq          INTEGER PRIMARY KEY,
	id           TEXT NOT NULL UNIQUE,
	user_id      TEXT NOT NULL,
	outbox_id    TEXT NOT NULL DEFAULT '',
	execution_id TEXT NOT NULL DEFAULT '',
	role         TEXT NOT NULL,
	content      TEXT NOT NULL,
	metadata     TEXT,
	created_at   INTEGER NOT NULL,
	dedupe_key   TEXT NOT NULL UNIQUE
);
CREATE INDEX events_user_order ON events (user_id, created_at, id);
CREATE INDEX events_order ON events (created_at, id);

CREATE TABLE users (
	id                   TEXT PRIMARY KEY,
	name                 TEXT NOT NULL DEFAULT '',
	email                TEXT NOT NULL UNIQUE, -- stored lowercased
	email_verified       INTEGER NOT NULL DEFAULT 0,
	image                TEXT NOT NULL DEFAULT '',
	created_at           INTEGER NOT NULL,
	updated_at           INTEGER NOT NULL,
	julep_user_id        TEXT NOT NULL DEFAULT '',
	responder_summary    TEXT NOT NULL DEFAULT '',
	responder_summary_at INTEGER
) WITHOUT ROWID;

CREATE TABLE accounts (
	id                       TEXT PRIMARY KEY,
	account_id               TEXT NOT NULL,
	provider_id              TEXT NOT NULL,
	user_id                  TEXT NOT NULL,
	access_token             TEXT NOT NULL DEFAULT '',
	refresh_token            TEXT NOT NULL DEFAULT '',
	id_token                 TEXT NOT NULL DEFAULT '',
	access_token_expires_at  INTEGER,
	refresh_token_expires_at INTEGER,
	scope                    TEXT NOT NULL DEFAULT '',
	created_at               INTEGER NOT NULL,
	updated_at               INTEGER NOT NULL,
	UNIQUE (provider_id, account_id)
) WITHOUT ROWID;
CREATE INDEX accounts_user ON accounts (user_id);

CREATE TABLE sessions (
	id         TEXT PRIMARY KEY,
	token      TEXT NOT NULL UNIQUE,
	user_id    TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	ip_address TEXT NOT NULL DEFAULT '',
	user_agent TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (user_id);
