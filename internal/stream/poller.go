package stream

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/astra-app/astra/internal/responder"
)

// Feed brings events committed anywhere (this instance or another) into a
// hub. An instance runs one feed: the Poller, or a change-stream feed on
// MongoDB replica sets. Run blocks until ctx is done.
type Feed interface {
	Run(ctx context.Context) error
}

// Defaults for Poller.
const (
	DefaultPollInterval = 250 * time.Millisecond
	DefaultPollBatch    = 500
	DefaultPollOverlap  = 256
	DefaultPollWindow   = 2 * time.Second
)

// Poller is the Feed that needs nothing from the database but an indexed
// cursor: it follows the global event order (CreatedAt, ID) with
// EventsAfter and publishes what it reads into the hub.
//
// On MongoDB two writers can commit out of order: an event with an earlier
// (CreatedAt, ID) can become visible after a later one was already read, and
// a plain cursor would skip it for good. So the poller does not read after
// the newest event it saw, but after the newest one older than Window
// before it (at most Overlap events back): recent events are re-read every
// poll, a late commit inside the window is found, and each subscription
// drops the repeats (and a socket reads from the store any event of a user
// it finds missing, so a commit later than the window is still sent once
// that user's next event arrives).
type Poller struct {
	Store    responder.Events
	Hub      *Hub
	Interval time.Duration // default 250ms (ASTRA_STREAM_POLL)
	Batch    int           // events per query, default 500
	Overlap  int           // most events re-read per poll, default 256
	Window   time.Duration // how late a commit may be and still be found, default 2s
	Logger   *slog.Logger
	// Deltas, when set, is read in every round too: reply fragments
	// produced by a dispatcher in any instance (see Poll for the order).
	Deltas *DeltaReader

	base   string      // read after this when recent holds nothing older than the window
	recent []seenEvent // the last events read, in (CreatedAt, ID) order
	// published holds the events read and published that a later poll may
	// read again (those not older than the anchor), so each is published
	// once: re-reading the window is how late commits are found, not a
	// reason to send, or count, an event twice.
	published map[string]time.Time
}

type seenEvent struct {
	id string
	at time.Time
}

func (p *Poller) defaults() {
	if p.Interval <= 0 {
		p.Interval = DefaultPollInterval
	}
	if p.Batch <= 0 {
		p.Batch = DefaultPollBatch
	}
	if p.Overlap <= 0 {
		p.Overlap = DefaultPollOverlap
	}
	if p.Window <= 0 {
		p.Window = DefaultPollWindow
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
}

// Run starts at the newest stored event (history is the socket's job, not
// the feed's) and polls until ctx is done. Store errors are logged and the
// poll retried with backoff; Run returns only ctx's error.
func (p *Poller) Run(ctx context.Context) error {
	p.defaults()
	backoff := p.Interval
	for {
		err := p.start(ctx)
		if err == nil {
			break
		}
		p.Logger.Warn("stream poller: read the last event", "err", err)
		if !sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(backoff*2, 10*time.Second)
	}
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	backoff = p.Interval
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if err := p.Poll(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p.Logger.Warn("stream poller: poll", "err", err)
			if !sleep(ctx, backoff) {
				return ctx.Err()
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = p.Interval
	}
}

func (p *Poller) start(ctx context.Context) error {
	last, err := p.Store.LastEvent(ctx)
	if err != nil {
		return err
	}
	p.base, p.recent, p.published = "", nil, nil
	if last != nil {
		p.base = last.ID
	}
	return nil
}

// Poll reads every event after the poller's cursor (re-reading the overlap
// window) and publishes them. Run calls it; it is exported so a caller
// driving its own schedule can use it. Not safe for concurrent use.
func (p *Poller) Poll(ctx context.Context) error {
	p.defaults()
	after := p.anchor()
	for {
		evs, err := p.Store.EventsAfter(ctx, after, p.Batch)
		if err != nil {
			if responder.IsNotFound(err) {
				// The cursor's event is gone; start again from the newest.
				return p.start(ctx)
			}
			return fmt.Errorf("events after %q: %w", after, err)
		}
		// Deltas are read after the events and published before them. A
		// dispatcher commits every delta of a reply before it appends the
		// reply's answer (follow waits for its relay's last batch), so an
		// answer this page holds has all its deltas committed before this
		// read, and they reach the hub first: every delta ahead of its
		// append, across processes too. (Read the other way round, an
		// answer committed between the two reads would go out before its
		// deltas, and the hub then drops them as late.) When deltas cannot
		// be read, the page's events wait for the next round rather than
		// go out without their deltas.
		if err := p.Deltas.Read(ctx); err != nil {
			return err
		}
		for _, e := range evs {
			if _, ok := p.published[e.ID]; !ok {
				p.Hub.PublishEvent(e)
				if p.published == nil {
					p.published = map[string]time.Time{}
				}
				p.published[e.ID] = e.CreatedAt
			}
			p.remember(e)
		}
		if len(evs) < p.Batch {
			p.forget()
			return nil
		}
		after = evs[len(evs)-1].ID
	}
}

// forget drops the published events no later poll reads again: those
// before the anchor's time (a re-read starts after the anchor). Until the
// window has an anchor it keeps them all.
func (p *Poller) forget() {
	n := len(p.recent)
	if n == 0 {
		return
	}
	edge := p.recent[n-1].at.Add(-p.Window)
	for i := n - 1; i >= 0; i-- {
		if at := p.recent[i].at; at.Before(edge) {
			for id, t := range p.published {
				if t.Before(at) {
					delete(p.published, id)
				}
			}
			return
		}
	}
}

// anchor is the id to read after: the newest event seen that is older than
// Window before the newest event seen.
func (p *Poller) anchor() string {
	if len(p.recent) == 0 {
		return p.base
	}
	edge := p.recent[len(p.recent)-1].at.Add(-p.Window)
	for i := len(p.recent) - 1; i >= 0; i-- {
		if p.recent[i].at.Before(edge) {
			return p.recent[i].id
		}
	}
	return p.base
}

func (p *Poller) remember(e responder.Event) {
	if n := len(p.recent); n > 0 {
		last := p.recent[n-1]
		// Only the newest extend the window; a late commit that sorts
		// earlier is published but needs no place in it.
		if !after(e.CreatedAt, e.ID, last.at, last.id) {
			return
		}
	}
	p.recent = append(p.recent, seenEvent{id: e.ID, at: e.CreatedAt})
	if len(p.recent) > p.Overlap {
		drop := len(p.recent) - p.Overlap
		p.base = p.recent[drop-1].id
		p.recent = append(p.recent[:0], p.recent[drop:]...)
	}
}

// after reports whether (at, id) sorts after (bt, bid) in event order.
func after(at time.Time, id string, bt time.Time, bid string) bool {
	if !at.Equal(bt) {
		return at.After(bt)
	}
	return id > bid
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
