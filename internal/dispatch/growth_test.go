package dispatch_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astra-app/astra/internal/dispatch"
	"github.com/astra-app/astra/internal/engine"
	"github.com/astra-app/astra/internal/engine/enginetest"
	"github.com/astra-app/astra/internal/responder"
)

// clock is a controllable Options.Now: real time plus an offset.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// The memory of ensured Julep users forgets users not seen for longer than
// it trusts them, so it does not grow with every user ever served.
func TestEnsuredUsersExpire(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	je := startEngine(t, nil)
	var clk clock
	r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: je.Client, TaskID: je.TaskID, Now: clk.Now}))
	send := func(name string) {
		m := enqueue(t, st, newUser(t, st, name), "hello", nil)
		r.d.Wake()
		if got := terminal(t, st, m.ID, 20*time.Second); got.Status != responder.StatusDelivered {
			t.Fatalf("status %s (%s)", got.Status, got.LastError)
		}
	}
	for i := range 20 {
		send(fmt.Sprint("Early ", i))
	}
	if n := dispatch.EnsuredLen(r.d); n != 20 {
		t.Fatalf("%d users remembered, want 20", n)
	}
	clk.Advance(time.Hour)
	send("Late")
	if n := dispatch.EnsuredLen(r.d); n != 1 {
		t.Fatalf("%d users remembered an hour later, want only the one just ensured", n)
	}
}

// A spoken reply is stored once per row, however many attempts the row
// takes after its answer.
func TestAudioStoredOncePerRow(t *testing.T) {
	t.Parallel()
	speech := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/mpeg")
		w.Write([]byte{0x49, 0x44, 0x33, 0xff, 0xfb, 0x90, 0x00}) // binary, as speech is
	}))
	t.Cleanup(speech.Close)
	srv := enginetest.Start(t, engine.Options{Key: engineKey, Concurrency: 8, Secrets: map[string]string{"TTS_URL": speech.URL + "/v1/audio/speech"}})
	c := newClient(t, srv.URL)
	taskID := pushResponder(t, c)
	st := &faultStore{Store: openStore(t)}
	st.failDeliver.Store(1) // the first attempt stores the answer, then fails
	u := newUser(t, st, "Voice")
	r := runDispatcher(t, fast(dispatch.Options{Store: st, Julep: c, TaskID: taskID}))
	m := enqueue(t, st, u, "say it", map[string]any{"voice": true})
	r.d.Wake()
	got := terminal(t, st, m.ID, 20*time.Second)
	if got.Status != responder.StatusDelivered || got.Attempts != 2 {
		t.Fatalf("status %s attempts %d (%s), want delivered at attempt 2", got.Status, got.Attempts, got.LastError)
	}
	e := onlyEvent(t, st, got, responder.RoleAssistant)
	if e.Metadata["audioUrl"] == nil {
		t.Fatalf("answer has no audio: %v", e.Metadata)
	}
	if n := st.blobs.Load(); n != 1 {
		t.Fatalf("%d blobs stored, want 1", n)
	}
}
