package dispatch_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/julep"
	"github.com/astra-app/astra/internal/responder"
)

// A heartbeat that keeps failing with ordinary errors (a MongoDB failover)
// must stop the row before its lease can be taken, and a later claim by the
// same instance must not share the row with the earlier one.
func TestFailingHeartbeatNeverSharesARow(t *testing.T) {
	t.Parallel()
	const lease = 600 * time.Millisecond

	t.Run("slow execution", func(t *testing.T) {
		t.Parallel()
		ms := newModelServer(t, replyTo, summarise)
		ms.delay = lease // each of the task's two model steps outlives the lease
		je := startEngine(t, ms.Model())
		st := &faultStore{Store: openStore(t)}
		st.failExtend.Store(true)
		u := newUser(t, st, "Failover")
		m := enqueue(t, st, u, "slow answer please", nil)
		st.onClaim = func(c *responder.Message) {
			if c.ID == m.ID && c.Attempts == 3 {
				st.failExtend.Store(false) // the failover is over
			}
		}
		r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID, Lease: lease}))
		r.d.Wake()
		got := terminal(t, st, m.ID, 30*time.Second)
		if got.Status != responder.StatusDelivered {
			t.Fatalf("status %s (%s)", got.Status, got.LastError)
		}
		// Workers that overlapped would each have followed the execution
		// to its end and tried to deliver.
		if n := st.delivers.Load(); n != 1 {
			t.Errorf("%d Deliver calls, want 1 (one worker at a time)", n)
		}
		checkClaims(t, st.claimsOf(m.ID), r)
		onlyEvent(t, st, got, responder.RoleAssistant)
		if n := len(executionsOf(t, je.Client, je.TaskID)[m.ID]); n != 1 {
			t.Fatalf("%d executions, want 1", n)
		}
	})

	t.Run("create in flight", func(t *testing.T) {
		t.Parallel()
		ms := newModelServer(t, replyTo, summarise)
		ms.delay = 2 * lease // the second worker is still following when the first create lands
		je := startEngine(t, ms.Model())
		// The first create waits past the lease before it reaches Julep
		// (unless its caller gives up); later ones go at once.
		var creates atomic.Int32
		slow := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if isCreateExecution(r) && creates.Add(1) == 1 {
				select {
				case <-time.After(2 * lease):
				case <-r.Context().Done():
					return nil, r.Context().Err()
				}
			}
			return http.DefaultTransport.RoundTrip(r)
		})
		c, err := julep.New(je.URL, engineKey, julep.WithHTTPClient(&http.Client{Transport: slow}))
		if err != nil {
			t.Fatal(err)
		}
		st := &faultStore{Store: openStore(t)}
		st.failExtend.Store(true)
		u := newUser(t, st, "In flight")
		m := enqueue(t, st, u, "create me once", nil)
		st.onClaim = func(c *responder.Message) {
			if c.ID == m.ID && c.Attempts == 2 {
				st.failExtend.Store(false)
			}
		}
		r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: c, TaskID: je.TaskID, Lease: lease}))
		r.d.Wake()
		got := terminal(t, st, m.ID, 30*time.Second)
		if got.Status != responder.StatusDelivered {
			t.Fatalf("status %s (%s)", got.Status, got.LastError)
		}
		// Give a create the first worker left in flight time to land.
		time.Sleep(4 * lease)
		if xs := executionsOf(t, je.Client, je.TaskID)[m.ID]; len(xs) != 1 || xs[0].Id != got.ExecutionID {
			t.Fatalf("executions %v, want exactly the recorded %s", xs, got.ExecutionID)
		}
		checkClaims(t, st.claimsOf(m.ID), r)
		onlyEvent(t, st, got, responder.RoleAssistant)
	})
}

// checkClaims asserts every claim of a row carried its own lease owner,
// prefixed with the instance's owner.
func checkClaims(t *testing.T, claims []responder.Message, r *running) {
	t.Helper()
	if len(claims) < 2 {
		t.Fatalf("%d claims, want the row reclaimed at least once", len(claims))
	}
	seen := map[string]bool{}
	for _, c := range claims {
		if seen[c.LeaseOwner] {
			t.Errorf("two claims under one lease owner %q: a stale worker's writes would pass", c.LeaseOwner)
		}
		seen[c.LeaseOwner] = true
		if !strings.HasPrefix(c.LeaseOwner, r.owner+"/") {
			t.Errorf("lease owner %q does not name the instance %q", c.LeaseOwner, r.owner)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
