// Package mongo is the MongoDB backend of responder.Store: Astra's outbox and
// events next to Better Auth's user, session and account collections, in the
// shapes the Next.js app and Better Auth read and write.
//
// Indexes: Open creates the indexes Astra's own queries need (outbox claim,
// a user's messages, events by user and in global order, the unique dedupe
// key, accounts by provider) under names starting with "astra_". It never
// creates an index on the keys Better Auth indexes itself (user email,
// session token, session and account userId): Better Auth 1.7+ creates those
// as user_email_uidx, session_token_uidx, session_userId_idx and
// account_userId_idx, and an index with the same keys under another name or
// other options would make its own creation, and then its writes, fail.
// Lookups by email and token use Better Auth's indexes when present; with an
// older Better Auth they scan. Without a unique email index, CreateUser's
// duplicate check is a read before the insert, so two sign-ups racing with one
// email could both succeed; with Better Auth's index the insert itself fails.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/astra-app/astra/internal/responder"
)

// Collection names. Better Auth's are singular unless its usePlural is set.
const (
	outboxCollection = "responder_outbox"
	eventsCollection = "responder_events"
)

// DefaultServerSelectionTimeout bounds how long Open waits for a server, so
// a wrong MONGODB_URI fails at start instead of hanging.
const DefaultServerSelectionTimeout = 5 * time.Second

// Options configures Open.
type Options struct {
	// Plural names Better Auth's collections users, sessions and accounts,
	// as Better Auth's usePlural option does.
	Plural bool
	// ServerSelectionTimeout overrides DefaultServerSelectionTimeout.
	ServerSelectionTimeout time.Duration
	// Now is the clock events are stamped with; default time.Now. Tests
	// give two stores on one database clocks that disagree.
	Now func() time.Time
}

// Store is a responder.Store on one MongoDB database.
type Store struct {
	client   *mongo.Client
	db       *mongo.Database
	outbox   *mongo.Collection
	events   *mongo.Collection
	users    *mongo.Collection
	sessions *mongo.Collection
	accounts *mongo.Collection
	blobs    *mongo.Collection

	clock        func() time.Time
	beforeInsert func() // tests: between reading a user's last seq and inserting
}

var _ responder.Store = (*Store)(nil)

// Open connects to the MongoDB server at uri, checks that it answers, and
// creates the indexes Astra needs in database dbName.
func Open(ctx context.Context, uri, dbName string, opts Options) (*Store, error) {
	if dbName == "" {
		return nil, errors.New("open MongoDB store: empty database name")
	}
	timeout := opts.ServerSelectionTimeout
	if timeout <= 0 {
		timeout = DefaultServerSelectionTimeout
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(timeout))
	if err != nil {
		return nil, fmt.Errorf("connect to MongoDB: %s", redact(err, uri))
	}
	if err := client.Ping(ctx, nil); err != nil {
		_ = client.Disconnect(context.Background())
		if ctx.Err() == nil && mongo.IsTimeout(err) {
			return nil, responder.Errorf(responder.EUNAVAILABLE,
				"connect to MongoDB: server selection timed out after %v (check MONGODB_URI)", timeout)
		}
		return nil, responder.Errorf(responder.EUNAVAILABLE, "connect to MongoDB: %s", redact(err, uri))
	}

	user, session, account := "user", "session", "account"
	if opts.Plural {
		user, session, account = "users", "sessions", "accounts"
	}
	db := client.Database(dbName)
	s := &Store{
		client:   client,
		db:       db,
		outbox:   db.Collection(outboxCollection),
		events:   db.Collection(eventsCollection),
		users:    db.Collection(user),
		sessions: db.Collection(session),
		accounts: db.Collection(account),
		blobs:    db.Collection(blobsCollection),
		clock:    opts.Now,
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if err := s.ensureIndexes(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("open MongoDB store: %s", redact(err, uri))
	}
	return s, nil
}

// Database is the database the store works in, so the embedded engine can
// keep its own collections next to Astra's.
func (s *Store) Database() *mongo.Database { return s.db }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, nil); err != nil {
		return responder.Errorf(responder.EUNAVAILABLE, "ping MongoDB: %v", err)
	}
	return nil
}

// Close disconnects from the server.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.client.Disconnect(ctx)
}

// index is one index Astra owns.
type index struct {
	coll   *mongo.Collection
	name   string
	keys   bson.D
	unique bool
	sparse bool
}

func (s *Store) indexes() []index {
	return []index{
		// Claim: status equality, then oldest first. The claim filter is an
		// $or of pending/available and processing/expired branches, each
		// served by this index and merged in createdAt order.
		{coll: s.outbox, name: "astra_outbox_claim", keys: bson.D{{Key: "status", Value: 1}, {Key: "createdAt", Value: 1}}},
		// NextAvailable: the earliest availableAt among pending rows.
		{coll: s.outbox, name: "astra_outbox_available", keys: bson.D{{Key: "status", Value: 1}, {Key: "availableAt", Value: 1}}},
		// UserMessages: a user's rows, newest first.
		{coll: s.outbox, name: "astra_outbox_user", keys: bson.D{{Key: "userId", Value: 1}, {Key: "createdAt", Value: -1}}},
		// LatestEvents, UserEventsAfter and AppendEvent's last seq walk a
		// user's order (userId, seq, createdAt, _id). (Earlier versions
		// created astra_events_user_order on (userId, createdAt, _id); no
		// query needs it now, and an operator may drop it.)
		{coll: s.events, name: "astra_events_user_seq", keys: bson.D{{Key: "userId", Value: 1}, {Key: "seq", Value: 1}, {Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}},
		// One number per user's event; sparse, since imports and the
		// original app's events have none.
		{coll: s.events, name: "astra_events_seq", keys: bson.D{{Key: "seqKey", Value: 1}}, unique: true, sparse: true},
		// EventsAfter and LastEvent walk the global (createdAt, _id) order.
		{coll: s.events, name: "astra_events_order", keys: bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}},
		// Sparse, because the original app stored events without a key and
		// a unique index would otherwise see all of them as one duplicate
		// null. (FerretDB ignores sparse and accepts missing keys anyway.)
		{coll: s.events, name: "astra_events_dedupe", keys: bson.D{{Key: "dedupeKey", Value: 1}}, unique: true, sparse: true},
		// One row per reply fragment: a repeat after a hand-off is dropped.
		{coll: s.db.Collection(deltasCollection), name: "astra_deltas_key", keys: bson.D{{Key: "executionId", Value: 1}, {Key: "idx", Value: 1}}, unique: true},
		// DeltasAfter walks (createdAt, _id); PruneDeltas cuts its old end.
		{coll: s.db.Collection(deltasCollection), name: "astra_deltas_order", keys: bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}},
		// AccountByProvider; Better Auth indexes only account.userId.
		{coll: s.accounts, name: "astra_account_provider", keys: bson.D{{Key: "providerId", Value: 1}, {Key: "accountId", Value: 1}}, unique: true},
	}
}

// ensureIndexes creates the indexes Astra's queries need. An index that
// already exists with the same keys, under whatever name, is left alone, so
// an operator's or an earlier version's index never makes Open fail.
func (s *Store) ensureIndexes(ctx context.Context) error {
	existing := make(map[string]map[string]bool) // collection -> key specs
	for _, ix := range s.indexes() {
		name := ix.coll.Name()
		if existing[name] == nil {
			keys, err := indexKeys(ctx, ix.coll)
			if err != nil {
				return err
			}
			existing[name] = keys
		}
		if existing[name][keySpec(ix.keys)] {
			continue
		}
		opts := options.Index().SetName(ix.name)
		if ix.unique {
			opts.SetUnique(true)
		}
		if ix.sparse {
			opts.SetSparse(true)
		}
		if _, err := ix.coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: opts}); err != nil {
			return fmt.Errorf("create index %s on %s: %w", ix.name, name, err)
		}
		existing[name][keySpec(ix.keys)] = true
	}
	return nil
}

// indexKeys lists the key specs of a collection's indexes; a collection that
// does not exist yet has none.
func indexKeys(ctx context.Context, coll *mongo.Collection) (map[string]bool, error) {
	cur, err := coll.Indexes().List(ctx)
	if err != nil {
		var se mongo.ServerError
		if errors.As(err, &se) && se.HasErrorCode(26) { // NamespaceNotFound
			return map[string]bool{}, nil
		}
		return nil, fmt.Errorf("list indexes of %s: %w", coll.Name(), err)
	}
	var specs []struct {
		Key bson.D `bson:"key"`
	}
	if err := cur.All(ctx, &specs); err != nil {
		return nil, fmt.Errorf("list indexes of %s: %w", coll.Name(), err)
	}
	keys := make(map[string]bool, len(specs))
	for _, sp := range specs {
		keys[keySpec(sp.Key)] = true
	}
	return keys, nil
}

// keySpec renders index keys comparably: 1, int64(1) and 1.0 are one direction.
func keySpec(keys bson.D) string {
	var b strings.Builder
	for _, k := range keys {
		dir := fmt.Sprint(k.Value)
		switch v := k.Value.(type) {
		case int32:
			dir = fmt.Sprint(int64(v))
		case float64:
			dir = fmt.Sprint(int64(v))
		}
		fmt.Fprintf(&b, "%s:%s,", k.Key, dir)
	}
	return b.String()
}

// redact removes the URI's password from a driver error, in case the driver
// quotes the URI.
func redact(err error, uri string) string {
	msg := err.Error()
	u, perr := url.Parse(uri)
	if perr != nil || u.User == nil {
		return msg
	}
	if pw, ok := u.User.Password(); ok && pw != "" {
		msg = strings.ReplaceAll(msg, pw, "xxxxx")
		if esc := url.QueryEscape(pw); esc != pw {
			msg = strings.ReplaceAll(msg, esc, "xxxxx")
		}
	}
	return msg
}

// ---- shared helpers ----

// now is the current time at the millisecond precision BSON dates keep.
func now() time.Time { return ms(time.Now()) }

// now is the store's clock (Options.Now), for stamping events.
func (s *Store) now() time.Time { return s.clock() }

// ms truncates t to milliseconds in UTC; the zero time stays zero.
func ms(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}

// utc reads a stored time as UTC; the zero time (a missing field) stays zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// objectID parses an id; malformed ids are simply not found.
func objectID(id string) (bson.ObjectID, bool) {
	if !responder.ValidID(id) {
		return bson.ObjectID{}, false
	}
	oid, err := bson.ObjectIDFromHex(strings.ToLower(id))
	return oid, err == nil
}

// newObjectID returns id as an ObjectID, or a new one when id is empty. A
// malformed caller-chosen id is EINVALID.
func newObjectID(what, id string) (bson.ObjectID, error) {
	if id == "" {
		return bson.ObjectIDFromHex(responder.NewID())
	}
	oid, ok := objectID(id)
	if !ok {
		return bson.ObjectID{}, responder.Errorf(responder.EINVALID, "%s id %q is not a 24-hex id", what, id)
	}
	return oid, nil
}

func notFound(what, id string) error {
	return responder.Errorf(responder.ENOTFOUND, "%s %s not found", what, id)
}

// isDuplicate reports a unique index violation. FerretDB reports one caused
// by an update as InternalError (code 1) carrying SQLite's message.
func isDuplicate(err error) bool {
	if mongo.IsDuplicateKeyError(err) {
		return true
	}
	var se mongo.ServerError
	if errors.As(err, &se) && se.HasErrorCode(1) {
		msg := strings.ToLower(err.Error())
		return strings.Contains(msg, "unique constraint") || strings.Contains(msg, "duplicate key")
	}
	return false
}
