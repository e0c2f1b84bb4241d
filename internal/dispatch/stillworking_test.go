package dispatch_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/responder"
)

// The still-working timer fires just as following ends (Stop finds it
// fired). Its callback must be waited for: joining the follower's
// WaitGroup only once running raced Wait (under -race a report, without it
// a rare "Add called concurrently with Wait" panic that takes the server
// down) and let the callback outlive the row's work.
func TestStillWorkingFiresAsFollowingEnds(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	je := startEngine(t, nil)
	u := newUser(t, st, "Timer")
	m := enqueue(t, st, u, "quick one", nil)
	d := dispatch.New(fast(dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID, StillWorking: time.Hour}))
	var outlived, fired atomic.Int32
	ran := make(chan struct{})
	dispatch.SetAfterFunc(d, func(_ time.Duration, f func()) func() bool {
		return func() bool {
			// Fired a moment before Stop: the runtime starts the callback
			// in its own goroutine, which may run late.
			fired.Add(1)
			go func() {
				time.Sleep(100 * time.Millisecond)
				// The answer is stored after following has ended: stored
				// before the callback ran, following did not wait for it.
				// (Checked before f, not after: f's end releases following,
				// and the answer then races the check.)
				if _, err := st.EventByDedupeKey(context.Background(), "outbox:"+m.ID+":assistant"); err == nil {
					outlived.Add(1)
				}
				f()
				close(ran)
			}()
			return false
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	d.Wake()
	if got := terminal(t, st, m.ID, 20*time.Second); got.Status != responder.StatusDelivered {
		t.Fatalf("status %s (%s)", got.Status, got.LastError)
	}
	if fired.Load() != 1 {
		t.Fatalf("timer fired %d times, want 1", fired.Load())
	}
	<-ran
	if outlived.Load() != 0 {
		t.Fatal("the still-working callback ran on after following ended: it was not waited for")
	}
}
