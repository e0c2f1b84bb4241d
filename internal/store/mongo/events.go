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
	}
}

// Event order is (createdAt, _id): ObjectIds compare bytewise in MongoDB,
// which is the order of their lowercase hex strings.
var (
	eventsAsc  = bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}
	eventsDesc = bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}
)

// AppendEvent inserts e; the unique dedupeKey index makes a second append
// with the same key fail, and the stored event is returned instead. This is
// atomic however many appenders race, on MongoDB and FerretDB alike.
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
	at := ms(e.CreatedAt)
	if at.IsZero() {
		at = now()
	}
	d := eventDoc{
		ID:          oid,
		UserID:      userKey(e.UserID),
		OutboxID:    e.OutboxID,
		ExecutionID: e.ExecutionID,
		Role:        string(e.Role),
		Content:     e.Content,
		CreatedAt:   at,
		Metadata:    e.Metadata,
		DedupeKey:   e.DedupeKey,
	}
	_, err = s.events.InsertOne(ctx, d)
	if err == nil {
		e.ID, e.CreatedAt = oid.Hex(), at
		return true, nil
	}
	if !isDuplicate(err) {
		return false, fmt.Errorf("append event %q: %w", e.DedupeKey, err)
	}
	var existing eventDoc
	err = s.events.FindOne(ctx, bson.D{{Key: "dedupeKey", Value: e.DedupeKey}}).Decode(&existing)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// The duplicate was the caller-chosen _id, not the key.
		return false, responder.Errorf(responder.ECONFLICT, "event %s already exists", oid.Hex())
	}
	if err != nil {
		return false, fmt.Errorf("read event %q after duplicate append: %w", e.DedupeKey, err)
	}
	*e = existing.event()
	return false, nil
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
		bson.D{{Key: "userId", Value: userID}}, eventsDesc, n)
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
		c, err := s.cursor(ctx, after, filter)
		if err != nil {
			return nil, err
		}
		filter = append(filter, c)
	}
	if limit <= 0 {
		return []responder.Event{}, nil
	}
	return s.findEvents(ctx, "read events of user "+userID+" after "+after, filter, eventsAsc, limit)
}

// EventsAfter pages every user's events after the cursor event.
func (s *Store) EventsAfter(ctx context.Context, after string, limit int) ([]responder.Event, error) {
	filter := bson.D{}
	if after != "" {
		c, err := s.cursor(ctx, after, nil)
		if err != nil {
			return nil, err
		}
		filter = append(filter, c)
	}
	if limit <= 0 {
		return []responder.Event{}, nil
	}
	return s.findEvents(ctx, "read events after "+after, filter, eventsAsc, limit)
}

// cursor looks up the event named after (restricted by scope) and returns
// the keyset condition "strictly after it in (createdAt, _id) order".
func (s *Store) cursor(ctx context.Context, after string, scope bson.D) (bson.E, error) {
	oid, ok := objectID(after)
	if !ok {
		return bson.E{}, notFound("event", after)
	}
	var d eventDoc
	filter := append(bson.D{{Key: "_id", Value: oid}}, scope...)
	err := s.events.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "createdAt", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return bson.E{}, notFound("event", after)
	}
	if err != nil {
		return bson.E{}, fmt.Errorf("read cursor event %s: %w", after, err)
	}
	return bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "createdAt", Value: bson.D{{Key: "$gt", Value: d.CreatedAt}}}},
		bson.D{{Key: "createdAt", Value: d.CreatedAt}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: oid}}}},
	}}, nil
}

// LastEvent returns the newest event of all users, or nil when there is none.
func (s *Store) LastEvent(ctx context.Context) (*responder.Event, error) {
	evs, err := s.findEvents(ctx, "read last event", bson.D{}, eventsDesc, 1)
	if err != nil || len(evs) == 0 {
		return nil, err
	}
	return &evs[0], nil
}
