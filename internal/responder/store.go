package responder

import (
	"context"
	"time"
)

// Store is everything Astra keeps, at the level of the domain. Backends
// (internal/store/sqlite, internal/store/mongo) implement it and pass the one
// conformance suite in internal/store/storetest.
//
// Conventions every backend keeps:
//   - ids are 24-hex strings (NewID); a malformed id is ENOTFOUND, never a panic;
//   - a lookup that finds nothing returns an *Error with ENOTFOUND;
//   - an owner-only operation by a non-owner, or on a row whose lease was
//     taken over, returns ECONFLICT and changes nothing;
//   - times are stored with millisecond precision, in UTC.
type Store interface {
	Outbox
	Events
	Auth
	Blobs
	Deltas

	// Ping checks that the backend answers (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// Outbox is responder_outbox: messages waiting for the dispatcher.
type Outbox interface {
	// Enqueue stores m as pending. It sets ID (when empty), Status, CreatedAt,
	// UpdatedAt and Attempts on m.
	Enqueue(ctx context.Context, m *Message) error
	// Message returns one message by id.
	Message(ctx context.Context, id string) (*Message, error)
	// UserMessages returns a user's latest messages, newest first.
	UserMessages(ctx context.Context, userID string, limit int) ([]Message, error)
	// UserMessagesBefore returns up to limit of a user's messages strictly
	// before m in the outbox order (CreatedAt, ID), newest first: a row's
	// earlier turns, however many newer rows of the user wait behind it.
	UserMessagesBefore(ctx context.Context, userID string, m *Message, limit int) ([]Message, error)
	// Claim atomically takes the oldest row that is pending and available
	// (AvailableAt <= now), or processing with an expired lease, sets it
	// processing with LeaseOwner=owner and LeaseUntil=now+lease, increments
	// Attempts, and returns it. No claimable row: (nil, nil).
	//
	// With maxPerUser > 0 a row is claimable only while its user has fewer
	// than maxPerUser rows processing under an unexpired lease, so one
	// user's backlog cannot hold every dispatcher slot while other users
	// wait. (On MongoDB the count and the claim are two commands: racing
	// instances may exceed the cap by a row or two, never take a row twice.)
	Claim(ctx context.Context, owner string, lease time.Duration, maxPerUser int) (*Message, error)
	// ExtendLease moves LeaseUntil to now+lease (owner only, while processing).
	ExtendLease(ctx context.Context, id, owner string, lease time.Duration) error
	// SetExecution records the Julep execution id of a row (owner only).
	SetExecution(ctx context.Context, id, owner, executionID string) error
	// SetJulepUser records the Julep user id on a row (owner only).
	SetJulepUser(ctx context.Context, id, owner, julepUserID string) error
	// Deliver marks a row delivered and clears its lease (owner only).
	Deliver(ctx context.Context, id, owner string) error
	// Fail marks a row error with a readable reason and clears its lease (owner only).
	Fail(ctx context.Context, id, owner, reason string) error
	// Release puts a row back to pending, claimable again from retryAt, with
	// the reason as LastError (owner only). Attempts is kept.
	Release(ctx context.Context, id, owner string, retryAt time.Time, reason string) error
	// CountByStatus returns how many rows are in each status (for metrics).
	CountByStatus(ctx context.Context) (map[Status]int, error)
	// NextAvailable returns when the earliest pending row becomes claimable
	// (zero time when none is waiting), so a dispatcher can sleep until then.
	NextAvailable(ctx context.Context) (time.Time, error)
}

// Events is responder_events: what the person sees in their conversation.
//
// Events have two orders. A user's events follow the user order of
// Position.Compare (Seq, which is commit order, after the unnumbered ones):
// a reader that sees a user's event n also sees every event before it, so
// a client resuming after the last event it saw misses none, however the
// writers' clocks disagree. All users' events together follow (CreatedAt,
// ID), the polling feed's order, which clock skew can make differ from
// commit order. Cursors are event ids and resume strictly after the named
// event, so equal timestamps neither skip nor repeat events.
type Events interface {
	// AppendEvent stores e unless an event with the same DedupeKey exists
	// (DedupeKey is required). It sets ID, CreatedAt (when zero) and Seq on
	// e and reports true; on a duplicate it copies the stored event into e
	// and reports false. An event given a CreatedAt is an import: Seq 0.
	AppendEvent(ctx context.Context, e *Event) (created bool, err error)
	// LatestEvents returns a user's latest n events in user order, oldest first.
	LatestEvents(ctx context.Context, userID string, n int) ([]Event, error)
	// UserEventsAfter returns up to limit of a user's events after the event
	// with id after, in user order. An empty after means from the beginning.
	// An after that is not one of this user's events is ENOTFOUND.
	UserEventsAfter(ctx context.Context, userID, after string, limit int) ([]Event, error)
	// EventsAfter returns up to limit events of all users after the event
	// with id after, in (CreatedAt, ID) order: the polling feed of the
	// stream. An empty after means from the beginning.
	EventsAfter(ctx context.Context, after string, limit int) ([]Event, error)
	// LastEvent returns the newest event of all users, or (nil, nil) when
	// there is none (where a polling feed starts).
	LastEvent(ctx context.Context) (*Event, error)
	// EventByDedupeKey returns the event stored under key; none is
	// ENOTFOUND. The dispatcher asks it whether a row's answer exists.
	EventByDedupeKey(ctx context.Context, key string) (*Event, error)
}

// Auth is Better Auth's records, shared with the Next.js app.
type Auth interface {
	CreateUser(ctx context.Context, u *User) error // sets ID, CreatedAt, UpdatedAt; email is lowercased; duplicate email: ECONFLICT
	UserByID(ctx context.Context, id string) (*User, error)
	UserByEmail(ctx context.Context, email string) (*User, error) // case-insensitive
	// SetUserJulepID stores the user's Julep user id.
	SetUserJulepID(ctx context.Context, userID, julepUserID string) error
	// SetResponderSummary stores the latest turn summary and when it was written.
	SetResponderSummary(ctx context.Context, userID, summary string, at time.Time) error

	CreateAccount(ctx context.Context, a *Account) error // sets ID, CreatedAt, UpdatedAt; duplicate (provider, accountId): ECONFLICT
	AccountByProvider(ctx context.Context, providerID, accountID string) (*Account, error)
	// UpdateAccountTokens replaces the tokens, expiries and scope of an account.
	UpdateAccountTokens(ctx context.Context, a *Account) error

	CreateSession(ctx context.Context, s *Session) error // sets ID, CreatedAt, UpdatedAt
	// SessionByToken returns an unexpired session by its token; an expired
	// or unknown one is ENOTFOUND.
	SessionByToken(ctx context.Context, token string) (*Session, error)
	// ExtendSession sets a session's ExpiresAt (and UpdatedAt to now).
	ExtendSession(ctx context.Context, token string, expiresAt time.Time) error
	// DeleteSession removes a session; deleting a missing one is not an error.
	DeleteSession(ctx context.Context, token string) error
}

// MaxBlobBytes bounds one stored blob (a spoken reply is well under it).
const MaxBlobBytes = 8 << 20

// Blobs keeps binary objects a user owns, such as spoken replies.
type Blobs interface {
	// PutBlob stores b. It sets ID and CreatedAt; a blob over MaxBlobBytes
	// is ETOOLARGE, one without a UserID or ContentType EINVALID.
	PutBlob(ctx context.Context, b *Blob) error
	// Blob returns one blob by id; callers check it belongs to the caller.
	Blob(ctx context.Context, id string) (*Blob, error)
}

// Deltas is responder_deltas: the text fragments of replies being
// produced, kept briefly so that the feed of every instance can relay them
// to its sockets (the dispatcher producing a reply may run in another
// process than the API holding the person's sockets). Nothing reads them
// after a reply is answered: the answer event has the whole text. Rows are
// pruned by age (DeltaKeep), so the table stays small.
type Deltas interface {
	// AppendDeltas stores ds in one write, in the given order, all stamped
	// with one CreatedAt; a delta whose (ExecutionID, Index) is stored
	// already (a repeat after a hand-off) is skipped. It sets ID and
	// CreatedAt on each stored delta and returns how many it stored. At most
	// MaxDeltaBatch deltas per call, each with an ExecutionID, a UserID, an
	// Index >= 0 and at most MaxDeltaText bytes of text; else EINVALID and
	// nothing is stored.
	AppendDeltas(ctx context.Context, ds []Delta) (int, error)
	// DeltasAfter returns up to limit deltas after (at, afterID) in
	// (CreatedAt, ID) order: the feed's cursor. An empty afterID means from
	// at on, inclusive.
	DeltasAfter(ctx context.Context, at time.Time, afterID string, limit int) ([]Delta, error)
	// PruneDeltas deletes the deltas created before t and returns how many.
	PruneDeltas(ctx context.Context, before time.Time) (int, error)
}

// Bounds of responder_deltas.
const (
	MaxDeltaText   = 16 << 10 // bytes of one fragment
	MaxDeltaBatch  = 1000     // deltas per AppendDeltas
	MaxReplyDeltas = 4096     // fragments of one reply that are shared; the rest arrive with the answer
	// DeltaKeep is how long a delta is kept: far longer than any feed's
	// window (a feed reads only the last few seconds), far shorter than
	// the table could grow large in.
	DeltaKeep = time.Minute
)

// Delta is one fragment of a reply's text while it is produced.
type Delta struct {
	ID          string
	UserID      string
	OutboxID    string
	ExecutionID string
	Index       int // the fragment's number in its execution, from 0
	Text        string
	CreatedAt   time.Time
}

// CheckDeltas validates a batch for AppendDeltas.
func CheckDeltas(ds []Delta) error {
	if len(ds) > MaxDeltaBatch {
		return Errorf(EINVALID, "%d deltas in one batch, over the limit of %d", len(ds), MaxDeltaBatch)
	}
	for i, d := range ds {
		switch {
		case d.ExecutionID == "":
			return Errorf(EINVALID, "delta %d has no execution id", i)
		case d.UserID == "":
			return Errorf(EINVALID, "delta %d has no user", i)
		case d.Index < 0:
			return Errorf(EINVALID, "delta %d has a negative index %d", i, d.Index)
		case len(d.Text) > MaxDeltaText:
			return Errorf(EINVALID, "delta %d has %d bytes of text, over the limit of %d", i, len(d.Text), MaxDeltaText)
		}
	}
	return nil
}
