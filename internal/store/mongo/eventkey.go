package mongo

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/astra-app/astra/internal/responder"
)

// EventByDedupeKey returns the event stored under key (the unique
// astra_events_dedupe index serves the lookup).
func (s *Store) EventByDedupeKey(ctx context.Context, key string) (*responder.Event, error) {
	if key == "" {
		// Events of the original app have no key: none of them is "the" one.
		return nil, notFound("event with dedupe key", key)
	}
	var d eventDoc
	err := s.events.FindOne(ctx, bson.D{{Key: "dedupeKey", Value: key}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, notFound("event with dedupe key", key)
	}
	if err != nil {
		return nil, fmt.Errorf("read event %q: %w", key, err)
	}
	e := d.event()
	return &e, nil
}
