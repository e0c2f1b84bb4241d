package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/astra-app/astra/internal/responder"
)

// eventDoc is a responder_events document. outboxId is the outbox row's id
// as a hex string, like userId.
type eventDoc struct {
	ID          bson.ObjectID `bson:"_id"`
	UserID      userKey       `bson:"userId"`
	OutboxID    string        `bson:"outboxId,omitempty"`
	ExecutionID string        `bson:"executionId,omitempty"`
	Role        string        `bson:"role"`
	Content     string        `bson:"content"`
	CreatedAt   time.Time     `bson:"createdAt"`
	Metadata    metadata      `bson:"metadata"`
	DedupeKey   string        `bson:"dedupeKey,omitempty"`
	// Seq is the user's event number (responder.Event.Seq); absent on
	// imports and on events the original app wrote. SeqKey is
	// "<userId>:<seq>" under a unique index: one field, so that absent
	// numbers never collide (FerretDB has no partial indexes, and a
	// compound unique index would see every absent seq of a user as one
	// duplicate null).
	Seq    int64  `bson:"seq,omitempty"`
	SeqKey string `bson:"seqKey,omitempty"`
	// TraceParent is the writer's trace context (responder.Event); absent
	// on events written before it was kept, and by the original app.
	TraceParent string `bson:"traceParent,omitempty"`
}

func (d *eventDoc) event() responder.Event {
	return responder.Event{
		ID:          d.ID.Hex(),
		UserID:      string(d.UserID),
		OutboxID:    d.OutboxID,
		ExecutionID: d.ExecutionID,
		Role:        responder.Role(d.Role),
		Content:     d.Content,
		Metadata:    d.Metadata,
		CreatedAt:   utc(d.CreatedAt),
		DedupeKey:   d.DedupeKey,
		Seq:         d.Seq,
		TraceParent: d.TraceParent,
	}
}

// The global order is (createdAt, _id): ObjectIds compare bytewise in
// MongoDB, which is the order of their lowercase hex strings. A user's
// order puts seq first; a missing seq sorts before every number, as null
// does in MongoDB's (and FerretDB's) sort order.
var (
	eventsAsc      = bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}
	eventsDesc     = bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}
	userEventsAsc  = bson.D{{Key: "seq", Value: 1}, {Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}
	userEventsDesc = bson.D{{Key: "seq", Value: -1}, {Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}
)

// maxSeqAttempts bounds AppendEvent's retries when other writers keep
// taking the number it read; each retry means another append committed.
const maxSeqAttempts = 100

// AppendEvent inserts e; the unique dedupeKey index makes a second append
// with the same key fail, and the stored event is returned instead. This is
// atomic however many appenders race, on MongoDB and FerretDB alike.
//
// An event gets seq = (its user's highest seq) + 1, and the unique seqKey
// index refuses a number another writer took first; the loser reads the
// new highest and tries again. A writer can only choose n+1 after event n
// is visible, so a reader that sees n+1 also sees n: a client resuming
// after the last event it saw misses none, whatever the writers' clocks
// (which only stamp createdAt).
func (s *Store) AppendEvent(ctx context.Context, e *responder.Event) (bool, error) {
	if e.DedupeKey == "" {
		return false, responder.Errorf(responder.EINVALID, "event has no dedupe key")
	}
	if e.UserID == "" {
		return false, responder.Errorf(responder.EINVALID, "event has no user id")
	}
	oid, err := newObjectID("event", e.ID)
	if err != nil {
		return false, err
	}
	numbered := e.CreatedAt.IsZero() // a caller-chosen time is an import
	d := eventDoc{
		ID:          oid,
		UserID:      userKey(e.UserID),
		OutboxID:    e.OutboxID,
		ExecutionID: e.ExecutionID,
		Role:        string(e.Role),
		Content:     e.Content,
		CreatedAt:   ms(e.CreatedAt),
		Metadata:    e.Metadata,
		DedupeKey:   e.DedupeKey,
		TraceParent: e.TraceParent,
	}
	for range maxSeqAttempts {
		if numbered {
			last, err := s.lastSeq(ctx, e.UserID)
			if err != nil {
				return false, fmt.Errorf("append event %q: %w", e.DedupeKey, err)
			}
			d.Seq = last + 1
			d.SeqKey = fmt.Sprintf("%s:%d", e.UserID, d.Seq)
			d.CreatedAt = ms(s.now())
			if s.beforeInsert != nil {
				s.beforeInsert()
			}
		}
		_, err = s.events.InsertOne(ctx, d)
		if err == nil {
			e.ID, e.CreatedAt, e.Seq = oid.Hex(), d.CreatedAt, d.Seq
			return true, nil
		}
		if !isDuplicate(err) {
			return false, fmt.Errorf("append event %q: %w", e.DedupeKey, err)
		}
		// Which unique index refused it: the dedupe key (the event is
		// stored already), the caller's id, or the number (try again).
		var existing eventDoc
		err = s.events.FindOne(ctx, bson.D{{Key: "dedupeKey", Value: e.DedupeKey}}).Decode(&existing)
		if err == nil {
			*e = existing.event()
			return false, nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return false, fmt.Errorf("read event %q after duplicate append: %w", e.DedupeKey, err)
		}
		n, err := s.events.CountDocuments(ctx, bson.D{{Key: "_id", Value: oid}})
		if err != nil {
			return false, fmt.Errorf("read event %s after duplicate append: %w", oid.Hex(), err)
		}
		if n > 0 || !numbered {
			return false, responder.Errorf(responder.ECONFLICT, "event %s already exists", oid.Hex())
		}
	}
	return false, responder.Errorf(responder.EUNAVAILABLE, "append event %q: seq still taken after %d attempts", e.DedupeKey, maxSeqAttempts)
}

// lastSeq is the highest seq of a user's events, 0 when none is numbered.
func (s *Store) lastSeq(ctx context.Context, userID string) (int64, error) {
	var d struct {
		Seq int64 `bson:"seq"`
	}
	err := s.events.FindOne(ctx, bson.D{{Key: "userId", Value: userID}},
		options.FindOne().SetSort(userEventsDesc).SetProjection(bson.D{{Key: "seq", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the last seq of user %s: %w", userID, err)
	}
	return d.Seq, nil
}

func (s *Store) findEvents(ctx context.Context, what string, filter, sort bson.D, limit int) ([]responder.Event, error) {
	cur, err := s.events.Find(ctx, filter, options.Find().SetSort(sort).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var docs []eventDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make([]responder.Event, len(docs))
	for i := range docs {
		out[i] = docs[i].event()
	}
	return out, nil
}

// LatestEvents returns a user's latest n events, oldest first.
func (s *Store) LatestEvents(ctx context.Context, userID string, n int) ([]responder.Event, error) {
	if n <= 0 {
		return []responder.Event{}, nil
	}
	evs, err := s.findEvents(ctx, "read latest events of user "+userID,
		bson.D{{Key: "userId", Value: userID}}, userEventsDesc, n)
	if err != nil {
		return nil, err
	}
	slices.Reverse(evs)
	return evs, nil
}

// UserEventsAfter pages a user's events after the cursor event, which must
// be one of that user's events.
func (s *Store) UserEventsAfter(ctx context.Context, userID, after string, limit int) ([]responder.Event, error) {
	filter := bson.D{{Key: "userId", Value: userID}}
	if after != "" {
		d, err := s.cursorEvent(ctx, after, filter)
		if err != nil {
			return nil, err
		}
		filter = append(filter, afterInUserOrder(d))
	}
	if limit <= 0 {
		return []responder.Event{}, nil
	}
	return s.findEvents(ctx, "read events of user "+userID+" after "+after, filter, userEventsAsc, limit)
}

// EventsAfter pages every user's events after the cursor event.
func (s *Store) EventsAfter(ctx context.Context, after string, limit int) ([]responder.Event, error) {
	filter := bson.D{}
	if after != "" {
		d, err := s.cursorEvent(ctx, after, nil)
		if err != nil {
			return nil, err
		}
		filter = append(filter, afterInGlobalOrder(d))
	}
	if limit <= 0 {
		return []responder.Event{}, nil
	}
	return s.findEvents(ctx, "read events after "+after, filter, eventsAsc, limit)
}

// cursorEvent looks up the position of the event named after (restricted
// by scope).
func (s *Store) cursorEvent(ctx context.Context, after string, scope bson.D) (*eventDoc, error) {
	oid, ok := objectID(after)
	if !ok {
		return nil, notFound("event", after)
	}
	var d eventDoc
	filter := append(bson.D{{Key: "_id", Value: oid}}, scope...)
	proj := bson.D{{Key: "createdAt", Value: 1}, {Key: "seq", Value: 1}}
	err := s.events.FindOne(ctx, filter, options.FindOne().SetProjection(proj)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, notFound("event", after)
	}
	if err != nil {
		return nil, fmt.Errorf("read cursor event %s: %w", after, err)
	}
	return &d, nil
}

// afterInGlobalOrder is the keyset condition "strictly after d in
// (createdAt, _id) order".
func afterInGlobalOrder(d *eventDoc) bson.E {
	return bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "createdAt", Value: bson.D{{Key: "$gt", Value: d.CreatedAt}}}},
		bson.D{{Key: "createdAt", Value: d.CreatedAt}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: d.ID}}}},
	}}
}

// afterInUserOrder is the keyset condition "strictly after d in its user's
// order": a higher seq, or, after an unnumbered event, any numbered one
// and the unnumbered ones after it in (createdAt, _id).
func afterInUserOrder(d *eventDoc) bson.E {
	if d.Seq > 0 {
		return bson.E{Key: "seq", Value: bson.D{{Key: "$gt", Value: d.Seq}}}
	}
	unnumbered := bson.E{Key: "seq", Value: bson.D{{Key: "$exists", Value: false}}}
	return bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "seq", Value: bson.D{{Key: "$gt", Value: 0}}}},
		bson.D{unnumbered, {Key: "createdAt", Value: bson.D{{Key: "$gt", Value: d.CreatedAt}}}},
		bson.D{unnumbered, {Key: "createdAt", Value: d.CreatedAt}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: d.ID}}}},
	}}
}

// LastEvent returns the newest event of all users, or nil when there is none.
func (s *Store) LastEvent(ctx context.Context) (*responder.Event, error) {
	evs, err := s.findEvents(ctx, "read last event", bson.D{}, eventsDesc, 1)
	if err != nil || len(evs) == 0 {
		return nil, err
	}
	return &evs[0], nil
}
