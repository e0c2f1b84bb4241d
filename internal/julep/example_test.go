package julep_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/astra-app/astra/internal/julep"
)

// Follow an execution: prefer the status stream, fall back to polling when
// the server has none, and reconnect after an interrupted stream.
func ExampleClient_StreamStatus() {
	ctx := context.Background()
	c, err := julep.New("http://localhost:8080", "key", julep.WithAuthHeader("X-Auth-Key"))
	if err != nil {
		panic(err)
	}
	execID := "1a2b3c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d"
	for {
		err := c.StreamStatus(ctx, execID, func(ev julep.StatusEvent) error {
			fmt.Println("status:", ev.Status)
			return nil
		})
		switch {
		case err == nil:
			return // terminal status seen
		case errors.Is(err, julep.ErrNotSupported):
			for {
				e, err := c.GetExecution(ctx, execID)
				if err == nil && julep.IsTerminal(e.Status) {
					return
				}
				if err != nil && !julep.IsTransient(err) {
					fmt.Println("give up:", err)
					return
				}
				time.Sleep(time.Second)
			}
		case julep.IsTransient(err):
			continue // reconnect
		default:
			fmt.Println("give up:", err)
			return
		}
	}
}

// Start an execution exactly once: an ambiguous failure is resolved by
// looking for the execution tagged with our outbox id, not by resending.
func ExampleClient_CreateExecution() {
	ctx := context.Background()
	c, _ := julep.New("http://localhost:8080", "key")
	taskID, outboxID := "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "665f1c2e9b1e8a0012345678"
	e, err := c.CreateExecution(ctx, taskID, map[string]any{"prompt": "hi"}, map[string]any{"outbox_id": outboxID})
	if err != nil && julep.IsTransient(err) {
		recent, lerr := c.ListExecutions(ctx, taskID, 50, 0)
		if lerr == nil {
			for i := range recent {
				if recent[i].Metadata["outbox_id"] == outboxID {
					e, err = &recent[i], nil
				}
			}
		}
	}
	if err != nil {
		fmt.Println("not started:", err)
		return
	}
	fmt.Println("started", e.Id)
}
