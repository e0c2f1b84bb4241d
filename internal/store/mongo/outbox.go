package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/astra-app/astra/internal/responder"
)

// outboxDoc is a responder_outbox document. Rows the original app inserted
// have only _id, userId, content, status, createdAt and metadata (and maybe
// julepUserId); every other field is optional on read and omitted when empty
// on write, except metadata, which is null when unset as it always was.
type outboxDoc struct {
	ID          bson.ObjectID `bson:"_id"`
	UserID      userKey       `bson:"userId"`
	JulepUserID string        `bson:"julepUserId,omitempty"`
	Content     string        `bson:"content"`
	Status      string        `bson:"status"`
	CreatedAt   time.Time     `bson:"createdAt"`
	UpdatedAt   time.Time     `bson:"updatedAt,omitempty"`
	Metadata    metadata      `bson:"metadata"`
	Attempts    int           `bson:"attempts"`
	LeaseOwner  string        `bson:"leaseOwner,omitempty"`
	LeaseUntil  time.Time     `bson:"leaseUntil,omitempty"`
	AvailableAt time.Time     `bson:"availableAt,omitempty"`
	ExecutionID string        `bson:"executionId,omitempty"`
	LastError   string        `bson:"lastError,omitempty"`
	DeliveredAt time.Time     `bson:"deliveredAt,omitempty"`
	// TraceParent is absent on rows written before traces were kept (and
	// by the Next.js app): such a row's dispatch starts a trace of its own.
	TraceParent string `bson:"traceParent,omitempty"`
}

func (d *outboxDoc) message() *responder.Message {
	return &responder.Message{
		ID:          d.ID.Hex(),
		UserID:      string(d.UserID),
		JulepUserID: d.JulepUserID,
		Content:     d.Content,
		Status:      responder.ParseStatus(d.Status),
		Metadata:    d.Metadata,
		CreatedAt:   utc(d.CreatedAt),
		UpdatedAt:   utc(d.UpdatedAt),
		Attempts:    d.Attempts,
		LeaseOwner:  d.LeaseOwner,
		LeaseUntil:  utc(d.LeaseUntil),
		TraceParent: d.TraceParent,
		AvailableAt: utc(d.AvailableAt),
		ExecutionID: d.ExecutionID,
		LastError:   d.LastError,
		DeliveredAt: utc(d.DeliveredAt),
	}
}

// Enqueue stores m as pending. A row with no availableAt is available at
// once, as the original app's rows (which never had the field) are.
func (s *Store) Enqueue(ctx context.Context, m *responder.Message) error {
	if m.UserID == "" {
		return responder.Errorf(responder.EINVALID, "outbox message has no user id")
	}
	oid, err := newObjectID("outbox message", m.ID)
	if err != nil {
		return err
	}
	t := now()
	d := outboxDoc{
		ID:          oid,
		UserID:      userKey(m.UserID),
		JulepUserID: m.JulepUserID,
		Content:     m.Content,
		Status:      string(responder.StatusPending),
		CreatedAt:   t,
		UpdatedAt:   t,
		Metadata:    m.Metadata,
		AvailableAt: ms(m.AvailableAt),
		TraceParent: m.TraceParent,
	}
	if _, err := s.outbox.InsertOne(ctx, d); err != nil {
		if isDuplicate(err) {
			return responder.Errorf(responder.ECONFLICT, "outbox message %s already exists", oid.Hex())
		}
		return fmt.Errorf("enqueue outbox message for user %s: %w", m.UserID, err)
	}
	m.ID = oid.Hex()
	m.Status = responder.StatusPending
	m.CreatedAt, m.UpdatedAt = t, t
	m.Attempts = 0
	m.AvailableAt = d.AvailableAt
	m.LeaseOwner, m.LeaseUntil, m.ExecutionID, m.LastError, m.DeliveredAt = "", time.Time{}, "", "", time.Time{}
	return nil
}

// Message returns one outbox row.
func (s *Store) Message(ctx context.Context, id string) (*responder.Message, error) {
	oid, ok := objectID(id)
	if !ok {
		return nil, notFound("outbox message", id)
	}
	var d outboxDoc
	if err := s.outbox.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&d); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, notFound("outbox message", id)
		}
		return nil, fmt.Errorf("read outbox message %s: %w", id, err)
	}
	return d.message(), nil
}

// UserMessages returns a user's latest messages, newest first.
func (s *Store) UserMessages(ctx context.Context, userID string, limit int) ([]responder.Message, error) {
	return s.userMessages(ctx, userID, bson.D{{Key: "userId", Value: userID}}, limit)
}

// UserMessagesBefore returns a user's messages before m, newest first.
func (s *Store) UserMessagesBefore(ctx context.Context, userID string, m *responder.Message, limit int) ([]responder.Message, error) {
	oid, err := bson.ObjectIDFromHex(m.ID)
	if err != nil {
		return nil, responder.Errorf(responder.ENOTFOUND, "message %q not found", m.ID)
	}
	at := ms(m.CreatedAt)
	return s.userMessages(ctx, userID, bson.D{{Key: "userId", Value: userID}, {Key: "$or", Value: bson.A{
		bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: at}}}},
		bson.D{{Key: "createdAt", Value: at}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: oid}}}},
	}}}, limit)
}

func (s *Store) userMessages(ctx context.Context, userID string, filter bson.D, limit int) ([]responder.Message, error) {
	if limit <= 0 {
		return []responder.Message{}, nil
	}
	cur, err := s.outbox.Find(ctx, filter,
		options.Find().SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list outbox messages of user %s: %w", userID, err)
	}
	var docs []outboxDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list outbox messages of user %s: %w", userID, err)
	}
	out := make([]responder.Message, len(docs))
	for i := range docs {
		out[i] = *docs[i].message()
	}
	return out, nil
}

// Claim takes the oldest claimable row in one findAndModify, which MongoDB
// applies atomically to one document, so racing dispatchers never share a
// row. The users at maxPerUser are found first, by an aggregation over the
// few processing rows, and excluded.
func (s *Store) Claim(ctx context.Context, owner string, lease time.Duration, maxPerUser int) (*responder.Message, error) {
	t := now()
	pending := string(responder.StatusPending)
	filter := bson.D{{Key: "$or", Value: bson.A{
		// availableAt: null also matches rows without the field.
		bson.D{{Key: "status", Value: pending}, {Key: "availableAt", Value: nil}},
		bson.D{{Key: "status", Value: pending}, {Key: "availableAt", Value: bson.D{{Key: "$lte", Value: t}}}},
		bson.D{{Key: "status", Value: string(responder.StatusProcessing)}, {Key: "leaseUntil", Value: bson.D{{Key: "$lt", Value: t}}}},
	}}}
	if maxPerUser > 0 {
		busy, err := s.busyUsers(ctx, t, maxPerUser)
		if err != nil {
			return nil, fmt.Errorf("claim outbox row for %s: %w", owner, err)
		}
		if len(busy) > 0 {
			filter = append(filter, bson.E{Key: "userId", Value: bson.D{{Key: "$nin", Value: busy}}})
		}
	}
	update := bson.D{
		{Key: "$set", Value: bson.D{
			{Key: "status", Value: string(responder.StatusProcessing)},
			{Key: "leaseOwner", Value: owner},
			{Key: "leaseUntil", Value: ms(t.Add(lease))},
			{Key: "updatedAt", Value: t},
		}},
		{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}},
	}
	opts := options.FindOneAndUpdate().
		SetSort(bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}).
		SetReturnDocument(options.After)
	var d outboxDoc
	if err := s.outbox.FindOneAndUpdate(ctx, filter, update, opts).Decode(&d); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, nil
		}
		return nil, fmt.Errorf("claim outbox row for %s: %w", owner, err)
	}
	return d.message(), nil
}

// busyUsers returns the userId values (as stored) of users with at least
// max rows processing under a lease unexpired at t. An aggregation rather
// than distinct, which FerretDB refuses under a context deadline.
func (s *Store) busyUsers(ctx context.Context, t time.Time, max int) (bson.A, error) {
	cur, err := s.outbox.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{
			{Key: "status", Value: string(responder.StatusProcessing)},
			{Key: "leaseUntil", Value: bson.D{{Key: "$gte", Value: t}}},
		}}},
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$userId"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
		{{Key: "$match", Value: bson.D{{Key: "n", Value: bson.D{{Key: "$gte", Value: max}}}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("find users at their cap: %w", err)
	}
	var groups []struct {
		User bson.RawValue `bson:"_id"`
	}
	if err := cur.All(ctx, &groups); err != nil {
		return nil, fmt.Errorf("find users at their cap: %w", err)
	}
	busy := make(bson.A, len(groups))
	for i, g := range groups {
		busy[i] = g.User
	}
	return busy, nil
}

// ownerUpdate applies update to row id only while owner holds its lease. When
// nothing matched it tells a missing row (ENOTFOUND) from one owned by
// someone else or no longer processing (ECONFLICT).
func (s *Store) ownerUpdate(ctx context.Context, what, id, owner string, update bson.D) error {
	oid, ok := objectID(id)
	if !ok {
		return notFound("outbox message", id)
	}
	filter := bson.D{
		{Key: "_id", Value: oid},
		{Key: "status", Value: string(responder.StatusProcessing)},
		{Key: "leaseOwner", Value: owner},
	}
	res, err := s.outbox.UpdateOne(ctx, filter, update)
	if err != nil {
		return fmt.Errorf("%s outbox row %s: %w", what, id, err)
	}
	if res.MatchedCount > 0 {
		return nil
	}
	err = s.outbox.FindOne(ctx, bson.D{{Key: "_id", Value: oid}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return notFound("outbox message", id)
	case err != nil:
		return fmt.Errorf("%s outbox row %s: %w", what, id, err)
	}
	return responder.Errorf(responder.ECONFLICT, "cannot %s outbox row %s: %s does not hold its lease", what, id, owner)
}

// ExtendLease moves the lease end to now+lease.
func (s *Store) ExtendLease(ctx context.Context, id, owner string, lease time.Duration) error {
	t := now()
	return s.ownerUpdate(ctx, "extend lease of", id, owner, bson.D{{Key: "$set", Value: bson.D{
		{Key: "leaseUntil", Value: ms(t.Add(lease))},
		{Key: "updatedAt", Value: t},
	}}})
}

// SetExecution records the Julep execution id of a row.
func (s *Store) SetExecution(ctx context.Context, id, owner, executionID string) error {
	return s.ownerUpdate(ctx, "set execution of", id, owner, bson.D{{Key: "$set", Value: bson.D{
		{Key: "executionId", Value: executionID},
		{Key: "updatedAt", Value: now()},
	}}})
}

// SetJulepUser records the Julep user id of a row.
func (s *Store) SetJulepUser(ctx context.Context, id, owner, julepUserID string) error {
	return s.ownerUpdate(ctx, "set Julep user of", id, owner, bson.D{{Key: "$set", Value: bson.D{
		{Key: "julepUserId", Value: julepUserID},
		{Key: "updatedAt", Value: now()},
	}}})
}

// clearLease removes the lease fields: unset rather than nulled, as they are
// on rows that were never claimed.
var clearLease = bson.E{Key: "$unset", Value: bson.D{{Key: "leaseOwner", Value: ""}, {Key: "leaseUntil", Value: ""}}}

// Deliver marks a row delivered.
func (s *Store) Deliver(ctx context.Context, id, owner string) error {
	t := now()
	return s.ownerUpdate(ctx, "deliver", id, owner, bson.D{
		{Key: "$set", Value: bson.D{
			{Key: "status", Value: string(responder.StatusDelivered)},
			{Key: "deliveredAt", Value: t},
			{Key: "updatedAt", Value: t},
		}},
		clearLease,
	})
}

// Fail marks a row error with a reason.
func (s *Store) Fail(ctx context.Context, id, owner, reason string) error {
	return s.ownerUpdate(ctx, "fail", id, owner, bson.D{
		{Key: "$set", Value: bson.D{
			{Key: "status", Value: string(responder.StatusError)},
			{Key: "lastError", Value: reason},
			{Key: "updatedAt", Value: now()},
		}},
		clearLease,
	})
}

// Release puts a row back to pending, claimable from retryAt.
func (s *Store) Release(ctx context.Context, id, owner string, retryAt time.Time, reason string) error {
	return s.ownerUpdate(ctx, "release", id, owner, bson.D{
		{Key: "$set", Value: bson.D{
			{Key: "status", Value: string(responder.StatusPending)},
			{Key: "availableAt", Value: ms(retryAt)},
			{Key: "lastError", Value: reason},
			{Key: "updatedAt", Value: now()},
		}},
		clearLease,
	})
}

// CountByStatus counts rows per status; every status is present, legacy
// "failed" rows count as error.
func (s *Store) CountByStatus(ctx context.Context) (map[responder.Status]int, error) {
	cur, err := s.outbox.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$status"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("count outbox rows by status: %w", err)
	}
	var groups []struct {
		Status string `bson:"_id"`
		N      int    `bson:"n"`
	}
	if err := cur.All(ctx, &groups); err != nil {
		return nil, fmt.Errorf("count outbox rows by status: %w", err)
	}
	counts := make(map[responder.Status]int, len(responder.Statuses))
	for _, st := range responder.Statuses {
		counts[st] = 0
	}
	for _, g := range groups {
		counts[responder.ParseStatus(g.Status)] += g.N
	}
	return counts, nil
}

// NextAvailable returns when the earliest pending row becomes claimable. A
// pending row without availableAt sorts first and is claimable since it was
// created.
func (s *Store) NextAvailable(ctx context.Context) (time.Time, error) {
	var d outboxDoc
	err := s.outbox.FindOne(ctx, bson.D{{Key: "status", Value: string(responder.StatusPending)}},
		options.FindOne().SetSort(bson.D{{Key: "availableAt", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("find next available outbox row: %w", err)
	}
	switch {
	case !d.AvailableAt.IsZero():
		return utc(d.AvailableAt), nil
	case !d.CreatedAt.IsZero():
		return utc(d.CreatedAt), nil
	default:
		return now(), nil
	}
}
