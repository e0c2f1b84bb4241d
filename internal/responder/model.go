package responder

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Status is an outbox message's state.
type Status string

const (
	StatusPending    Status = "pending"
	StatusProcessing Status = "processing"
	StatusDelivered  Status = "delivered"
	StatusError      Status = "error"
)

// Statuses lists every status, in lifecycle order.
var Statuses = []Status{StatusPending, StatusProcessing, StatusDelivered, StatusError}

// ParseStatus reads a stored status; the original app also wrote "failed",
// which means error.
func ParseStatus(s string) Status {
	switch s {
	case "failed":
		return StatusError
	default:
		return Status(s)
	}
}

// Terminal reports whether no further work happens on a message in this status.
func (s Status) Terminal() bool { return s == StatusDelivered || s == StatusError }

// Message is a row of responder_outbox: one prompt a person sent, waiting for,
// or done with, its Julep execution.
type Message struct {
	ID          string         `json:"id"`
	UserID      string         `json:"userId"`
	JulepUserID string         `json:"julepUserId"`
	Content     string         `json:"content"`
	Status      Status         `json:"status"`
	Metadata    map[string]any `json:"metadata"`
	CreatedAt   time.Time      `json:"createdAt"`
	UpdatedAt   time.Time      `json:"updatedAt"`
	Attempts    int            `json:"attempts"`
	LeaseOwner  string         `json:"leaseOwner,omitempty"`
	LeaseUntil  time.Time      `json:"leaseUntil,omitzero"`
	// AvailableAt holds a released row back from claiming until then (retry backoff).
	AvailableAt time.Time `json:"availableAt,omitzero"`
	ExecutionID string    `json:"executionId,omitempty"`
	LastError   string    `json:"lastError,omitempty"`
	DeliveredAt time.Time `json:"deliveredAt,omitzero"`
	// TraceParent is the W3C traceparent of the request that posted the
	// message, so whichever dispatcher claims it continues that trace.
	// Empty on rows stored before traces were kept.
	TraceParent string `json:"-"`
}

// Role is who an event speaks for.
type Role string

const (
	RoleAssistant Role = "assistant"
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
)

// Event is a row of responder_events: something the person sees in their
// conversation. DedupeKey is unique; appending the same key twice stores one event.
//
// Seq is the event's place in its user's order: AppendEvent numbers a
// user's events 1, 2, 3, ... in the order they become visible, whatever the
// writers' clocks say. It is 0 for an event stored with a caller-chosen
// CreatedAt (an import) or written by the original app; those come before
// every numbered event of their user, by (CreatedAt, ID).
type Event struct {
	ID          string         `json:"id"`
	UserID      string         `json:"userId"`
	OutboxID    string         `json:"outboxId,omitempty"`
	ExecutionID string         `json:"executionId,omitempty"`
	Role        Role           `json:"role"`
	Content     string         `json:"content"`
	Metadata    map[string]any `json:"metadata"`
	CreatedAt   time.Time      `json:"createdAt"`
	DedupeKey   string         `json:"-"`
	Seq         int64          `json:"seq,omitempty"`
	// TraceParent is the W3C trace context of the event's writer, stored
	// with it, so the socket write that sends it (on any instance) joins
	// the message's trace. Empty on events written before it was kept.
	TraceParent string `json:"-"`
}

// Position is where an event sits in its user's order (see Event).
type Position struct {
	Seq       int64
	CreatedAt time.Time
	ID        string
}

// Position returns e's place in its user's order.
func (e *Event) Position() Position { return Position{Seq: e.Seq, CreatedAt: e.CreatedAt, ID: e.ID} }

// Compare orders p and q in their user's order: unnumbered events first,
// by (CreatedAt, ID), then numbered ones by Seq. It returns -1, 0 or +1.
func (p Position) Compare(q Position) int {
	switch {
	case p.Seq != q.Seq:
		if p.Seq < q.Seq {
			return -1
		}
		return 1
	case p.Seq > 0:
		return 0 // a user's numbers are unique
	case !p.CreatedAt.Equal(q.CreatedAt):
		return p.CreatedAt.Compare(q.CreatedAt)
	}
	return strings.Compare(p.ID, q.ID)
}

// User is Better Auth's user record, plus the fields Astra keeps on it.
type User struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Email         string    `json:"email"`
	EmailVerified bool      `json:"emailVerified"`
	Image         string    `json:"image,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
	// Role is Better Auth's admin plugin's role ("admin", "user", or a
	// comma-separated list); "admin" opens the operators' console.
	Role string `json:"role,omitempty"`
	// JulepUserID is the user's id in Julep once the dispatcher has ensured it.
	JulepUserID string `json:"julepUserId,omitempty"`
	// ResponderSummary is the latest short summary of a turn (the seed's memory step).
	ResponderSummary   string    `json:"responderSummary,omitempty"`
	ResponderSummaryAt time.Time `json:"responderSummaryAt,omitzero"`
}

// Session is Better Auth's session record. Token is the secret the signed cookie carries.
type Session struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	UserID    string    `json:"userId"`
	ExpiresAt time.Time `json:"expiresAt"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	IPAddress string    `json:"ipAddress,omitempty"`
	UserAgent string    `json:"userAgent,omitempty"`
}

// Account is Better Auth's link between a user and an identity provider.
type Account struct {
	ID                    string    `json:"id"`
	AccountID             string    `json:"accountId"`
	ProviderID            string    `json:"providerId"`
	UserID                string    `json:"userId"`
	AccessToken           string    `json:"-"`
	RefreshToken          string    `json:"-"`
	IDToken               string    `json:"-"`
	AccessTokenExpiresAt  time.Time `json:"accessTokenExpiresAt,omitzero"`
	RefreshTokenExpiresAt time.Time `json:"refreshTokenExpiresAt,omitzero"`
	Scope                 string    `json:"scope,omitempty"`
	CreatedAt             time.Time `json:"createdAt"`
	UpdatedAt             time.Time `json:"updatedAt"`
}

// Blob is a binary object a user owns, such as the audio of a spoken reply.
type Blob struct {
	ID          string
	UserID      string
	ContentType string
	Data        []byte
	CreatedAt   time.Time
}

// AudioPath is the URL path where the service serves a spoken reply stored
// as blob id, to its owner only; reply events link it as metadata.audioUrl.
func AudioPath(blobID string) string { return "/api/responder/audio/" + blobID }

// CheckBlob says what is wrong with a blob before it is stored.
func CheckBlob(b *Blob) error {
	switch {
	case b.UserID == "":
		return Errorf(EINVALID, "blob has no owner")
	case b.ContentType == "":
		return Errorf(EINVALID, "blob has no content type")
	case len(b.Data) > MaxBlobBytes:
		return Errorf(ETOOLARGE, "blob of %d bytes is over the %d byte limit", len(b.Data), MaxBlobBytes)
	}
	return nil
}

// julepUserNamespace scopes the UUIDv5 ids Astra gives Julep users, so the
// same auth user always maps to the same Julep user and retries are harmless.
var julepUserNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://astra.app/julep-user"))

// JulepUserID is the deterministic Julep user id (UUIDv5) of an auth user id.
func JulepUserID(authUserID string) string {
	return uuid.NewSHA1(julepUserNamespace, []byte(authUserID)).String()
}

var (
	oidProcess [5]byte
	oidCounter atomic.Uint32
)

func init() {
	if _, err := rand.Read(oidProcess[:]); err != nil {
		panic(err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	oidCounter.Store(binary.BigEndian.Uint32(b[:]))
}

// NewID returns a new 24-hex id laid out as a MongoDB ObjectId (4-byte
// seconds, 5 random bytes fixed per process, 3-byte counter), so clients see
// one id format whichever backend stored the row.
func NewID() string {
	var b [12]byte
	binary.BigEndian.PutUint32(b[0:4], uint32(time.Now().Unix()))
	copy(b[4:9], oidProcess[:])
	c := oidCounter.Add(1)
	b[9], b[10], b[11] = byte(c>>16), byte(c>>8), byte(c)
	return hex.EncodeToString(b[:])
}

// ValidID reports whether s looks like an id NewID or MongoDB could have made.
func ValidID(s string) bool {
	if len(s) != 24 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
