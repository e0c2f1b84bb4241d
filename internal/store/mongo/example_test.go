package mongo_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/astra-app/astra/internal/store/mongo"
)

// Open connects to the database the Next.js app and Better Auth share;
// Plural matches Better Auth's usePlural setting.
func ExampleOpen() {
	ctx := context.Background()
	s, err := mongo.Open(ctx, os.Getenv("MONGODB_URI"), "astra", mongo.Options{Plural: false})
	if err != nil {
		// e.g. "connect to MongoDB: server selection timed out after 5s (check MONGODB_URI)"
		log.Fatal(err)
	}
	defer s.Close()

	counts, err := s.CountByStatus(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(counts)
}
