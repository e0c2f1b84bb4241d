// Package store opens the configured backend of responder.Store: MongoDB
// when MONGODB_URI is set, else the embedded SQLite database in the data dir.
package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/astra-app/astra/internal/config"
	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/mongo"
	"github.com/astra-app/astra/internal/store/sqlite"
)

// SQLiteFile is the embedded database's file name inside ASTRA_DATA_DIR.
const SQLiteFile = "astra.db"

// Open returns the store cfg names, its backend's name for logs, and one
// clear error line when it cannot be opened.
func Open(ctx context.Context, cfg *config.Config) (responder.Store, string, error) {
	if cfg.MongoURI != "" {
		s, err := mongo.Open(ctx, cfg.MongoURI, cfg.MongoDB, mongo.Options{Plural: cfg.MongoPlural})
		if err != nil {
			return nil, "", err
		}
		return s, "mongodb", nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("ASTRA_DATA_DIR %q cannot be created: %v", cfg.DataDir, err)
	}
	s, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, SQLiteFile))
	if err != nil {
		return nil, "", err
	}
	return s, "sqlite", nil
}
