// Command ferretserve runs an embedded FerretDB (SQLite backend) in a
// process of its own, for tests that run several astra processes against
// one MongoDB-compatible server. Built without the race detector, it keeps
// a `go test -race` run from making the database the bottleneck (and its
// slowness the thing under test). Only tests build it.
//
// Usage: ferretserve DIR. It prints its MongoDB URI on the first line of
// standard output and runs until its standard input closes.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: ferretserve DIR")
		os.Exit(2)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Handler:   "sqlite",
		SQLiteURL: "file:" + os.Args[1] + "/",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretserve:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	fmt.Println(f.MongoDBURI())
	_ = f.Run(ctx)
}
