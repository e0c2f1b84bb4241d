package main

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/ferrettest"
	"github.com/astra-app/astra/internal/store/mongo"
	"github.com/astra-app/astra/internal/store/sqlite"
	"github.com/astra-app/astra/internal/stream"
)

// Without change streams (SQLite; FerretDB, which has none) the api role
// polls, and the dispatcher gets no outbox waker; the log says which.
func TestFeedFallsBackToPolling(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) responder.Store{
		"sqlite": func(t *testing.T) responder.Store {
			st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
		"mongodb-ferretdb": func(t *testing.T) responder.Store {
			st, err := mongo.Open(t.Context(), ferrettest.Start(t), "feed", mongo.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := open(t)
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))

			watch := changeStreamStore(t.Context(), st, log)
			if watch != nil {
				t.Fatal("changeStreamStore found change streams")
			}
			feed := eventFeed(watch, st, stream.NewHub(stream.Options{}), 0, log)
			if _, ok := feed.(*stream.Poller); !ok {
				t.Errorf("feed is %T, want *stream.Poller", feed)
			}
			if !strings.Contains(logs.String(), "stream feed: polling every 250ms") {
				t.Errorf("log does not say the feed polls:\n%s", logs.String())
			}
		})
	}
}
