package sqlitestate_test

import (
	"path/filepath"
	"testing"

	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/sqlitestate"
	"github.com/astra-app/astra/internal/engine/statetest"
	"github.com/astra-app/astra/internal/store/sqlite"
)

// TestConformance runs the shared engine.State suite on the project store's
// own SQLite file, as astra serve uses it.
func TestConformance(t *testing.T) {
	t.Parallel()
	statetest.Run(t, func(t *testing.T) engine.State {
		db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "astra.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s, err := sqlitestate.New(t.Context(), db)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
