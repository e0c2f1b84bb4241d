package mongo_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/astra-app/astra/internal/responder"
	"github.com/astra-app/astra/internal/store/ferrettest"
	"github.com/astra-app/astra/internal/store/mongo"
)

// fields reads the one document of coll matching filter and returns its
// field names with their BSON types.
func fields(t *testing.T, coll *driver.Collection, filter bson.D) map[string]bson.Type {
	t.Helper()
	raw, err := coll.FindOne(t.Context(), filter).Raw()
	if err != nil {
		t.Fatalf("read %s document: %v", coll.Name(), err)
	}
	elems, err := raw.Elements()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]bson.Type, len(elems))
	for _, e := range elems {
		out[e.Key()] = e.Value().Type
	}
	return out
}

func sameFields(t *testing.T, what string, got, want map[string]bson.Type) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Errorf("%s fields:\n got %v\nwant %v", what, sorted(got), sorted(want))
	}
}

func sorted(m map[string]bson.Type) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+":"+v.String())
	}
	slices.Sort(out)
	return out
}

func oid(t *testing.T, id string) bson.ObjectID {
	t.Helper()
	o, err := bson.ObjectIDFromHex(id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

const (
	tObjectID = bson.TypeObjectID
	tString   = bson.TypeString
	tDate     = bson.TypeDateTime
	tBool     = bson.TypeBoolean
	tDoc      = bson.TypeEmbeddedDocument
	tNull     = bson.TypeNull
)

// TestBetterAuthDocuments checks the exact shapes Better Auth and the
// Next.js app read: field names, ObjectId foreign keys, optional fields
// omitted rather than null.
func TestBetterAuthDocuments(t *testing.T) {
	t.Parallel()
	s := newFerretStore(t, mongo.Options{})
	ctx := t.Context()
	db := s.Database()

	full := &responder.User{Name: "Ada", Email: "Ada@Example.com", EmailVerified: true, Image: "https://x/a.png"}
	bare := &responder.User{Email: "bare@example.com"}
	for _, u := range []*responder.User{full, bare} {
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	userFields := map[string]bson.Type{
		"_id": tObjectID, "name": tString, "email": tString, "emailVerified": tBool,
		"createdAt": tDate, "updatedAt": tDate,
	}
	sameFields(t, "bare user", fields(t, db.Collection("user"), bson.D{{Key: "_id", Value: oid(t, bare.ID)}}), userFields)
	userFields["image"] = tString
	sameFields(t, "user", fields(t, db.Collection("user"), bson.D{{Key: "_id", Value: oid(t, full.ID)}}), userFields)
	if err := s.SetUserJulepID(ctx, full.ID, responder.JulepUserID(full.ID)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetResponderSummary(ctx, full.ID, "likes tea", time.Now()); err != nil {
		t.Fatal(err)
	}
	userFields["julepUserId"], userFields["responderSummary"], userFields["responderSummaryAt"] = tString, tString, tDate
	sameFields(t, "user with Astra fields", fields(t, db.Collection("user"), bson.D{{Key: "_id", Value: oid(t, full.ID)}}), userFields)

	sess := &responder.Session{Token: "tok", UserID: full.ID, ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	sameFields(t, "session", fields(t, db.Collection("session"), bson.D{{Key: "token", Value: "tok"}}), map[string]bson.Type{
		"_id": tObjectID, "token": tString, "userId": tObjectID, "expiresAt": tDate, "createdAt": tDate, "updatedAt": tDate,
	})

	acc := &responder.Account{AccountID: "sub-1", ProviderID: "google", UserID: full.ID, AccessToken: "at", Scope: "openid,email"}
	if err := s.CreateAccount(ctx, acc); err != nil {
		t.Fatal(err)
	}
	accFields := map[string]bson.Type{
		"_id": tObjectID, "accountId": tString, "providerId": tString, "userId": tObjectID,
		"accessToken": tString, "scope": tString, "createdAt": tDate, "updatedAt": tDate,
	}
	accFilter := bson.D{{Key: "accountId", Value: "sub-1"}}
	sameFields(t, "account", fields(t, db.Collection("account"), accFilter), accFields)

	// Replacing tokens removes the ones that are now empty.
	acc.AccessToken, acc.RefreshToken, acc.Scope = "", "rt", ""
	acc.RefreshTokenExpiresAt = time.Now().Add(time.Hour)
	if err := s.UpdateAccountTokens(ctx, acc); err != nil {
		t.Fatal(err)
	}
	delete(accFields, "accessToken")
	delete(accFields, "scope")
	accFields["refreshToken"], accFields["refreshTokenExpiresAt"] = tString, tDate
	sameFields(t, "account after token update", fields(t, db.Collection("account"), accFilter), accFields)
}

// TestResponderDocuments checks the outbox and events shapes the original
// app wrote: userId a hex string, metadata an object or null.
func TestResponderDocuments(t *testing.T) {
	t.Parallel()
	s := newFerretStore(t, mongo.Options{})
	ctx := t.Context()
	db := s.Database()
	user := responder.NewID()

	m := &responder.Message{UserID: user, Content: "hi"}
	if err := s.Enqueue(ctx, m); err != nil {
		t.Fatal(err)
	}
	outbox := db.Collection("responder_outbox")
	outFields := map[string]bson.Type{
		"_id": tObjectID, "userId": tString, "content": tString, "status": tString,
		"createdAt": tDate, "updatedAt": tDate, "metadata": tNull, "attempts": bson.TypeInt64,
	}
	got := fields(t, outbox, bson.D{{Key: "_id", Value: oid(t, m.ID)}})
	if got["attempts"] == bson.TypeInt32 { // a Go int may be stored as either
		got["attempts"] = bson.TypeInt64
	}
	sameFields(t, "outbox row", got, outFields)

	c, err := s.Claim(ctx, "w1", time.Hour, 0)
	if err != nil || c == nil {
		t.Fatalf("Claim = %v, %v", c, err)
	}
	if err := s.SetExecution(ctx, c.ID, "w1", "exec-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(ctx, c.ID, "w1"); err != nil {
		t.Fatal(err)
	}
	got = fields(t, outbox, bson.D{{Key: "_id", Value: oid(t, m.ID)}})
	for _, k := range []string{"leaseOwner", "leaseUntil"} {
		if _, ok := got[k]; ok {
			t.Errorf("delivered row still has %s", k)
		}
	}
	if got["executionId"] != tString || got["deliveredAt"] != tDate || got["status"] != tString {
		t.Errorf("delivered row fields = %v", sorted(got))
	}

	e := &responder.Event{UserID: user, OutboxID: m.ID, Role: responder.RoleAssistant, Content: "hello",
		Metadata: map[string]any{"n": 1}, DedupeKey: m.ID + ":reply"}
	if _, err := s.AppendEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	sameFields(t, "event", fields(t, db.Collection("responder_events"), bson.D{{Key: "_id", Value: oid(t, e.ID)}}), map[string]bson.Type{
		"_id": tObjectID, "userId": tString, "outboxId": tString, "role": tString, "content": tString,
		"createdAt": tDate, "metadata": tDoc, "dedupeKey": tString,
		// Astra's own: the user's event number and its unique key.
		"seq": bson.TypeInt64, "seqKey": tString,
	})
}

// TestLegacyDocuments reads what older code wrote: string userIds in Better
// Auth's collections, outbox rows with only the original fields, the old
// "failed" status, and events without a dedupe key.
func TestLegacyDocuments(t *testing.T) {
	t.Parallel()
	s := newFerretStore(t, mongo.Options{})
	ctx := t.Context()
	db := s.Database()
	userID := responder.NewID()
	created := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)

	insert := func(coll string, doc bson.D) {
		t.Helper()
		if _, err := db.Collection(coll).InsertOne(ctx, doc); err != nil {
			t.Fatalf("insert into %s: %v", coll, err)
		}
	}
	insert("session", bson.D{
		{Key: "_id", Value: bson.NewObjectID()}, {Key: "token", Value: "legacy-token"}, {Key: "userId", Value: userID},
		{Key: "expiresAt", Value: time.Now().Add(time.Hour)}, {Key: "createdAt", Value: created}, {Key: "updatedAt", Value: created},
	})
	sess, err := s.SessionByToken(ctx, "legacy-token")
	if err != nil {
		t.Fatalf("SessionByToken with a string userId: %v", err)
	}
	if sess.UserID != userID {
		t.Errorf("session UserID = %q, want %q", sess.UserID, userID)
	}
	insert("account", bson.D{
		{Key: "_id", Value: bson.NewObjectID()}, {Key: "accountId", Value: "legacy-sub"}, {Key: "providerId", Value: "google"},
		{Key: "userId", Value: userID}, {Key: "createdAt", Value: created}, {Key: "updatedAt", Value: created},
	})
	acc, err := s.AccountByProvider(ctx, "google", "legacy-sub")
	if err != nil {
		t.Fatalf("AccountByProvider with a string userId: %v", err)
	}
	if acc.UserID != userID {
		t.Errorf("account UserID = %q, want %q", acc.UserID, userID)
	}

	failedID, pendingID := bson.NewObjectID(), bson.NewObjectID()
	insert("responder_outbox", bson.D{
		{Key: "_id", Value: failedID}, {Key: "userId", Value: userID}, {Key: "content", Value: "old"},
		{Key: "createdAt", Value: created}, {Key: "status", Value: "failed"}, {Key: "metadata", Value: nil},
	})
	insert("responder_outbox", bson.D{
		{Key: "_id", Value: pendingID}, {Key: "userId", Value: userID}, {Key: "julepUserId", Value: "ju"},
		{Key: "content", Value: "waiting"}, {Key: "createdAt", Value: created.Add(time.Second)},
		{Key: "status", Value: "pending"}, {Key: "metadata", Value: bson.D{{Key: "source", Value: "next"}}},
	})
	m, err := s.Message(ctx, failedID.Hex())
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != responder.StatusError {
		t.Errorf("legacy failed row reads as %q, want %q", m.Status, responder.StatusError)
	}
	counts, err := s.CountByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[responder.StatusError] != 1 || counts[responder.StatusPending] != 1 || len(counts) != len(responder.Statuses) {
		t.Errorf("CountByStatus = %v, want 1 error and 1 pending, keyed by the four statuses", counts)
	}

	// A pending row without availableAt is due since it was created, and
	// claimable.
	next, err := s.NextAvailable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !next.Equal(created.Add(time.Second)) {
		t.Errorf("NextAvailable = %v, want the legacy row's createdAt %v", next, created.Add(time.Second))
	}
	c, err := s.Claim(ctx, "w1", time.Minute, 0)
	if err != nil || c == nil {
		t.Fatalf("Claim of a legacy row = %v, %v", c, err)
	}
	if c.ID != pendingID.Hex() || c.Attempts != 1 || c.JulepUserID != "ju" || c.Metadata["source"] != "next" {
		t.Errorf("claimed legacy row = %+v", *c)
	}

	// Events the original app stored have no dedupe key; several of them
	// must not trip the unique index, and new keyed events still dedupe.
	for i := range 3 {
		insert("responder_events", bson.D{
			{Key: "_id", Value: bson.NewObjectID()}, {Key: "userId", Value: userID}, {Key: "role", Value: "assistant"},
			{Key: "content", Value: "old"}, {Key: "createdAt", Value: created.Add(time.Duration(i) * time.Millisecond)},
			{Key: "metadata", Value: nil},
		})
	}
	e := &responder.Event{UserID: userID, Role: responder.RoleUser, Content: "new", DedupeKey: "k"}
	if created, err := s.AppendEvent(ctx, e); err != nil || !created {
		t.Fatalf("AppendEvent = %v, %v", created, err)
	}
	dup := &responder.Event{UserID: userID, Role: responder.RoleUser, Content: "again", DedupeKey: "k"}
	if created, err := s.AppendEvent(ctx, dup); err != nil || created || dup.ID != e.ID {
		t.Fatalf("duplicate AppendEvent = %v, %v, id %s; want false, nil, %s", created, err, dup.ID, e.ID)
	}
	evs, err := s.LatestEvents(ctx, userID, 10)
	if err != nil || len(evs) != 4 || evs[3].ID != e.ID {
		t.Fatalf("LatestEvents = %v, %v; want the 3 legacy events then the new one", evs, err)
	}
}

func TestPluralCollections(t *testing.T) {
	t.Parallel()
	s := newFerretStore(t, mongo.Options{Plural: true})
	ctx := t.Context()
	u := &responder.User{Email: "p@example.com"}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, &responder.Session{Token: "pt", UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, &responder.Account{AccountID: "ps", ProviderID: "google", UserID: u.ID}); err != nil {
		t.Fatal(err)
	}
	for coll, want := range map[string]int64{"users": 1, "sessions": 1, "accounts": 1, "user": 0, "session": 0, "account": 0} {
		n, err := s.Database().Collection(coll).CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s holds %d documents, want %d", coll, n, want)
		}
	}
}

// TestIndexesLiveWithBetterAuth: Open never takes Better Auth's index keys,
// Better Auth can create its indexes after Astra did (and before), and
// Open is idempotent.
func TestIndexesLiveWithBetterAuth(t *testing.T) {
	t.Parallel()
	uri := ferrettest.Start(t)
	dbName := "t" + responder.NewID()
	open := func() *mongo.Store {
		t.Helper()
		s, err := mongo.Open(t.Context(), uri, dbName, mongo.Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	ctx := t.Context()
	// An index someone else made on keys Astra wants is reused, not
	// duplicated under Astra's name.
	client, err := driver.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	if _, err := client.Database(dbName).Collection("responder_outbox").Indexes().CreateOne(ctx, driver.IndexModel{
		Keys:    bson.D{{Key: "status", Value: 1}, {Key: "createdAt", Value: 1}},
		Options: options.Index().SetName("operator_claim"),
	}); err != nil {
		t.Fatal(err)
	}

	s := open()
	db := s.Database()

	betterAuth := []struct {
		coll, name string
		keys       bson.D
		unique     bool
	}{
		{"user", "user_email_uidx", bson.D{{Key: "email", Value: 1}}, true},
		{"session", "session_token_uidx", bson.D{{Key: "token", Value: 1}}, true},
		{"session", "session_userId_idx", bson.D{{Key: "userId", Value: 1}}, false},
		{"account", "account_userId_idx", bson.D{{Key: "userId", Value: 1}}, false},
	}
	for _, ix := range betterAuth {
		opts := options.Index().SetName(ix.name)
		if ix.unique {
			opts.SetUnique(true)
		}
		if _, err := db.Collection(ix.coll).Indexes().CreateOne(ctx, driver.IndexModel{Keys: ix.keys, Options: opts}); err != nil {
			t.Errorf("Better Auth's index %s after Astra's: %v", ix.name, err)
		}
	}
	open() // again, with Better Auth's indexes present

	for _, coll := range []string{"user", "session", "account", "responder_outbox", "responder_events"} {
		cur, err := db.Collection(coll).Indexes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var specs []struct {
			Name string `bson:"name"`
			Key  bson.D `bson:"key"`
		}
		if err := cur.All(ctx, &specs); err != nil {
			t.Fatal(err)
		}
		seen := map[string]string{}
		for _, sp := range specs {
			var k string
			for _, e := range sp.Key {
				k += e.Key + ","
			}
			if other, dup := seen[k]; dup {
				t.Errorf("%s has two indexes on %s: %s and %s", coll, k, other, sp.Name)
			}
			seen[k] = sp.Name
		}
	}

	// With Better Auth's unique email index the insert itself refuses a
	// second user, whatever the read-before-insert saw.
	if err := s.CreateUser(ctx, &responder.User{Email: "x@example.com"}); err != nil {
		t.Fatal(err)
	}
	err = s.CreateUser(ctx, &responder.User{Email: "X@example.com"})
	if !responder.IsConflict(err) {
		t.Errorf("second CreateUser = %v, want ECONFLICT", err)
	}
}

func TestMalformedCallerIDs(t *testing.T) {
	t.Parallel()
	s := newFerretStore(t, mongo.Options{})
	ctx := t.Context()
	err := s.Enqueue(ctx, &responder.Message{ID: "nope", UserID: responder.NewID(), Content: "x"})
	if responder.ErrorCode(err) != responder.EINVALID {
		t.Errorf("Enqueue with a malformed id = %v, want EINVALID", err)
	}
	_, err = s.AppendEvent(ctx, &responder.Event{ID: "nope", UserID: "u", DedupeKey: "k"})
	if responder.ErrorCode(err) != responder.EINVALID {
		t.Errorf("AppendEvent with a malformed id = %v, want EINVALID", err)
	}
	err = s.CreateSession(ctx, &responder.Session{Token: "t", UserID: "not-hex", ExpiresAt: time.Now()})
	if responder.ErrorCode(err) != responder.EINVALID {
		t.Errorf("CreateSession with a malformed user id = %v, want EINVALID", err)
	}
	// The same caller-chosen id twice is a conflict, not a silent dedupe.
	id := responder.NewID()
	if _, err := s.AppendEvent(ctx, &responder.Event{ID: id, UserID: "u", DedupeKey: "a"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.AppendEvent(ctx, &responder.Event{ID: id, UserID: "u", DedupeKey: "b"})
	if !responder.IsConflict(err) {
		t.Errorf("AppendEvent reusing an id = %v, want ECONFLICT", err)
	}
}
