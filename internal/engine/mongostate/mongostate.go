// Package mongostate keeps the embedded engine's state in engine_*
// collections of a MongoDB database (the project store's own database), for
// deployments that run on MongoDB. It works on a standalone server, a replica
// set and FerretDB alike: it needs no transactions.
//
// Documents. JSON the engine hands over (bodies, metadata, inputs, outputs,
// checkpoints, transition bodies) is stored as JSON text, not as BSON
// documents: it round-trips byte for byte whatever its keys ("$set", "a.b",
// "" are all valid JSON keys that MongoDB or FerretDB would reject or
// misread as paths) and its numbers. Times are int64 Unix nanoseconds, so
// they round-trip exactly and sort as numbers. Records that list in a sort
// order carry an "ord" ObjectId, set once at insertion, which breaks ties in
// the sort column in insertion order, as SQLite's rowid does.
//
// Metadata filters. Beside the metadata text, each record keeps metadata_kv:
// one string per metadata key, the JSON array [key, text], where text is the
// value's text as engine.ListQuery compares it (a string itself; anything
// but null its compact JSON). A filter is then an $all over those strings:
// exact, indifferent to what the key contains, and served by a multikey
// index.
//
// Advance without transactions: see the comment on Advance.
package mongostate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/astra-app/astra/internal/engine"
)

// Collection names.
const (
	resourcesCollection   = "engine_resources"
	tasksCollection       = "engine_tasks"
	executionsCollection  = "engine_executions"
	transitionsCollection = "engine_transitions"
)

// State is the MongoDB engine.State.
type State struct {
	resources   *mongo.Collection
	tasks       *mongo.Collection
	executions  *mongo.Collection
	transitions *mongo.Collection
}

var _ engine.State = (*State)(nil)

// New creates the indexes the state's queries need and returns the state.
func New(ctx context.Context, db *mongo.Database) (*State, error) {
	s := &State{
		resources:   db.Collection(resourcesCollection),
		tasks:       db.Collection(tasksCollection),
		executions:  db.Collection(executionsCollection),
		transitions: db.Collection(transitionsCollection),
	}
	asc := func(keys ...string) bson.D {
		d := make(bson.D, len(keys))
		for i, k := range keys {
			d[i] = bson.E{Key: k, Value: 1}
		}
		return d
	}
	for _, ix := range []struct {
		coll   *mongo.Collection
		name   string
		keys   bson.D
		unique bool
	}{
		// ListResources: a kind (and parent) in created_at or updated_at order.
		{s.resources, "engine_resources_created", asc("kind", "parent", "created_at", "ord"), false},
		{s.resources, "engine_resources_updated", asc("kind", "parent", "updated_at", "ord"), false},
		{s.resources, "engine_resources_metadata", asc("kind", "metadata_kv"), false},
		// GetTask and PutTask's version allocation; unique, so two writers
		// cannot both create one version.
		{s.tasks, "engine_tasks_version", asc("id", "version"), true},
		// ListTasks: an agent's latest versions.
		{s.tasks, "engine_tasks_agent", asc("agent_id", "latest", "created_at"), false},
		// ListExecutions and ExecutionsByStatus.
		{s.executions, "engine_executions_task", asc("task_id", "created_at", "ord"), false},
		{s.executions, "engine_executions_status", asc("status", "created_at"), false},
		// The sweep's claims: claimable statuses whose lease ran out.
		{s.executions, "engine_executions_lease", asc("status", "lease_until"), false},
		// ListTransitions and Advance's sweep. Not unique: an attempt that
		// loses a race briefly holds its own copy of a position.
		{s.transitions, "engine_transitions_seq", asc("execution_id", "seq"), false},
		// One Advance call's entries, to commit or discard them.
		{s.transitions, "engine_transitions_token", asc("token"), false},
	} {
		opts := options.Index().SetName(ix.name)
		if ix.unique {
			opts.SetUnique(true)
		}
		if _, err := ix.coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: opts}); err != nil {
			return nil, fmt.Errorf("create index %s on %s: %w", ix.name, ix.coll.Name(), err)
		}
	}
	return s, nil
}

// ---- encoding helpers ----

func nanos(t time.Time) int64 { return t.UTC().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func jsonText(v any) (string, error) {
	if v == nil {
		return "null", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// encodeMeta returns metadata's JSON text and its metadata_kv strings.
func encodeMeta(m map[string]any) (string, []string, error) {
	kv := []string{}
	if m == nil {
		return "{}", kv, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", nil, err
	}
	// Derive each value's text from the encoded JSON, as a JSON database
	// would from the stored document, so filters see exactly what is stored.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return "", nil, err
	}
	for k, v := range raw {
		var text string
		switch {
		case string(v) == "null":
			continue // null has no text and matches no filter
		case len(v) > 0 && v[0] == '"':
			if err := json.Unmarshal(v, &text); err != nil {
				return "", nil, err
			}
		default:
			text = string(v)
		}
		kv = append(kv, pair(k, text))
	}
	sort.Strings(kv)
	return string(b), kv, nil
}

// pair is one metadata_kv entry. A JSON array keeps key and text apart
// whatever characters either holds.
func pair(key, text string) string {
	b, _ := json.Marshal([2]string{key, text}) // strings always encode
	return string(b)
}

func decodeMeta(s string) map[string]any {
	m := map[string]any{}
	_ = json.Unmarshal([]byte(s), &m)
	return m
}

// hasPairs reports whether a record's metadata_kv holds every filter pair.
func hasPairs(kv []string, filter map[string]string) bool {
	for k, v := range filter {
		if !slices.Contains(kv, pair(k, v)) {
			return false
		}
	}
	return true
}

// listFilter adds q's metadata filter to a query filter.
func listFilter(q engine.ListQuery, filter bson.D) bson.D {
	if len(q.MetadataFilter) == 0 {
		return filter
	}
	pairs := make([]string, 0, len(q.MetadataFilter))
	for k, v := range q.MetadataFilter {
		pairs = append(pairs, pair(k, v))
	}
	sort.Strings(pairs)
	return append(filter, bson.E{Key: "metadata_kv", Value: bson.D{{Key: "$all", Value: pairs}}})
}

// listSort is q's order: the sort column, then insertion order, both in the
// requested direction.
func listSort(q engine.ListQuery) bson.D {
	col := "created_at"
	if q.SortBy == "updated_at" {
		col = "updated_at"
	}
	dir := 1
	if q.Desc {
		dir = -1
	}
	return bson.D{{Key: col, Value: dir}, {Key: "ord", Value: dir}}
}

func listOptions(q engine.ListQuery) *options.FindOptionsBuilder {
	opts := options.Find().SetSort(listSort(q))
	if q.Offset > 0 {
		opts.SetSkip(int64(q.Offset))
	}
	if q.Limit > 0 {
		opts.SetLimit(int64(q.Limit))
	}
	return opts
}

// isDuplicate reports a unique index violation. FerretDB reports one caused
// by an update as InternalError (code 1) carrying SQLite's message.
func isDuplicate(err error) bool {
	if mongo.IsDuplicateKeyError(err) {
		return true
	}
	var se mongo.ServerError
	if errors.As(err, &se) && se.HasErrorCode(1) {
		msg := strings.ToLower(err.Error())
		return strings.Contains(msg, "unique constraint") || strings.Contains(msg, "duplicate key")
	}
	return false
}

// ---- resources ----

// resourceDoc is an engine_resources document. _id is "<kind>/<id>": kinds
// never contain a slash, so it is unique per (kind, id).
type resourceDoc struct {
	Kind       string        `bson:"kind"`
	ID         string        `bson:"id"`
	Parent     string        `bson:"parent"`
	CreatedAt  int64         `bson:"created_at"`
	UpdatedAt  int64         `bson:"updated_at"`
	Ord        bson.ObjectID `bson:"ord"`
	Metadata   string        `bson:"metadata"`
	MetadataKV []string      `bson:"metadata_kv"`
	Body       string        `bson:"body"`
}

func resourceKey(kind, id string) string { return kind + "/" + id }

func (d resourceDoc) resource() engine.Resource {
	return engine.Resource{
		Kind: d.Kind, ID: d.ID, Parent: d.Parent,
		CreatedAt: fromNanos(d.CreatedAt), UpdatedAt: fromNanos(d.UpdatedAt),
		Metadata: decodeMeta(d.Metadata), Body: json.RawMessage(d.Body),
	}
}

// PutResource inserts or replaces a resource, keeping its first created_at.
func (s *State) PutResource(ctx context.Context, r engine.Resource) error {
	meta, kv, err := encodeMeta(r.Metadata)
	if err != nil {
		return fmt.Errorf("encode metadata of %s %s: %w", r.Kind, r.ID, err)
	}
	update := bson.D{
		{Key: "$set", Value: bson.D{
			{Key: "kind", Value: r.Kind}, {Key: "id", Value: r.ID}, {Key: "parent", Value: r.Parent},
			{Key: "updated_at", Value: nanos(r.UpdatedAt)},
			{Key: "metadata", Value: meta}, {Key: "metadata_kv", Value: kv}, {Key: "body", Value: string(r.Body)},
		}},
		{Key: "$setOnInsert", Value: bson.D{
			{Key: "created_at", Value: nanos(r.CreatedAt)}, {Key: "ord", Value: bson.NewObjectID()},
		}},
	}
	// Two upserts of a new id can both find nothing and both insert: the
	// loser's duplicate key error means the document now exists, so the
	// same upsert run again is the update it should have been.
	for attempt := 0; ; attempt++ {
		_, err = s.resources.UpdateOne(ctx, bson.D{{Key: "_id", Value: resourceKey(r.Kind, r.ID)}}, update,
			options.UpdateOne().SetUpsert(true))
		if err == nil {
			return nil
		}
		if !isDuplicate(err) || attempt == 4 {
			return fmt.Errorf("put %s %s: %w", r.Kind, r.ID, err)
		}
	}
}

// checkFence reports ErrConflict unless f holds its execution's lease.
//
// Without transactions (FerretDB has none) the check and the write that
// follows are two operations: a run that loses its lease between them can
// still make that one write. It is harmless because a running execution's
// doc writes are idempotent (deterministic ids: the next owner's re-run
// writes the same doc) and the stale run's next Advance is refused.
func (s *State) checkFence(ctx context.Context, f engine.Fence) error {
	if f.Token == "" {
		return engine.ErrConflict
	}
	n, err := s.executions.CountDocuments(ctx, bson.D{{Key: "_id", Value: f.ExecutionID}, {Key: "lease_token", Value: f.Token}})
	if err != nil {
		return fmt.Errorf("check the lease of execution %s: %w", f.ExecutionID, err)
	}
	if n == 0 {
		return engine.ErrConflict
	}
	return nil
}

// PutResourceFenced puts a resource while f holds its execution's lease.
func (s *State) PutResourceFenced(ctx context.Context, r engine.Resource, f engine.Fence) error {
	if err := s.checkFence(ctx, f); err != nil {
		return err
	}
	return s.PutResource(ctx, r)
}

// DeleteResourceFenced deletes a resource while f holds its execution's lease.
func (s *State) DeleteResourceFenced(ctx context.Context, kind, id string, f engine.Fence) error {
	if err := s.checkFence(ctx, f); err != nil {
		return err
	}
	return s.DeleteResource(ctx, kind, id)
}

// GetResource reads one resource.
func (s *State) GetResource(ctx context.Context, kind, id string) (engine.Resource, error) {
	var d resourceDoc
	err := s.resources.FindOne(ctx, bson.D{{Key: "_id", Value: resourceKey(kind, id)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return engine.Resource{}, engine.ErrNotFound
	}
	if err != nil {
		return engine.Resource{}, fmt.Errorf("get %s %s: %w", kind, id, err)
	}
	return d.resource(), nil
}

// ListResources pages resources of one kind (and parent).
func (s *State) ListResources(ctx context.Context, q engine.ListQuery) ([]engine.Resource, error) {
	filter := bson.D{{Key: "kind", Value: q.Kind}}
	if q.Parent != "" {
		filter = append(filter, bson.E{Key: "parent", Value: q.Parent})
	}
	cur, err := s.resources.Find(ctx, listFilter(q, filter), listOptions(q))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", q.Kind, err)
	}
	var docs []resourceDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list %s: %w", q.Kind, err)
	}
	out := make([]engine.Resource, len(docs))
	for i, d := range docs {
		out[i] = d.resource()
	}
	return out, nil
}

// DeleteResource removes a resource; a missing one is ErrNotFound.
func (s *State) DeleteResource(ctx context.Context, kind, id string) error {
	res, err := s.resources.DeleteOne(ctx, bson.D{{Key: "_id", Value: resourceKey(kind, id)}})
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", kind, id, err)
	}
	if res.DeletedCount == 0 {
		return engine.ErrNotFound
	}
	return nil
}

// ---- tasks ----

// taskDoc is one version of a task. _id is an ObjectId made at insertion,
// which also orders ties. latest marks the newest version (see PutTask).
type taskDoc struct {
	OID        bson.ObjectID `bson:"_id"`
	ID         string        `bson:"id"`
	Version    int           `bson:"version"`
	AgentID    string        `bson:"agent_id"`
	Latest     bool          `bson:"latest"`
	CreatedAt  int64         `bson:"created_at"`
	UpdatedAt  int64         `bson:"updated_at"`
	Metadata   string        `bson:"metadata"`
	MetadataKV []string      `bson:"metadata_kv"`
	Body       string        `bson:"body"`
}

func (d taskDoc) task() engine.Task {
	return engine.Task{
		ID: d.ID, AgentID: d.AgentID, Version: d.Version,
		CreatedAt: fromNanos(d.CreatedAt), UpdatedAt: fromNanos(d.UpdatedAt),
		Metadata: decodeMeta(d.Metadata), Body: json.RawMessage(d.Body),
	}
}

// putTaskAttempts bounds PutTask's retries when concurrent writers of one
// task take the version it chose.
const putTaskAttempts = 10

// PutTask stores a new version of a task.
//
// The version is the highest stored one plus one; the unique (id, version)
// index turns a race between two writers into a duplicate for one of them,
// which then retries with the next number. The new version is inserted
// marked latest, and only then are older versions unmarked, so a task always
// has a latest version; if the process stops in between, two versions stay
// marked, and ListTasks keeps the higher (the next PutTask unmarks both).
func (s *State) PutTask(ctx context.Context, t engine.Task) (engine.Task, error) {
	meta, kv, err := encodeMeta(t.Metadata)
	if err != nil {
		return t, fmt.Errorf("encode metadata of task %s: %w", t.ID, err)
	}
	for range putTaskAttempts {
		var prev taskDoc
		err := s.tasks.FindOne(ctx, bson.D{{Key: "id", Value: t.ID}},
			options.FindOne().SetSort(bson.D{{Key: "version", Value: -1}})).Decode(&prev)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			t.Version = 1
		case err != nil:
			return t, fmt.Errorf("put task %s: %w", t.ID, err)
		default:
			// The same definition as the latest version is that version:
			// instances deploying tasks/ at once make one version, and a
			// writer that lost the race below finds the winner's here.
			if prev.AgentID == t.AgentID && prev.Body == string(t.Body) && prev.Metadata == meta {
				return prev.task(), nil
			}
			t.Version = prev.Version + 1
			t.CreatedAt = fromNanos(prev.CreatedAt)
		}
		d := taskDoc{
			OID: bson.NewObjectID(), ID: t.ID, Version: t.Version, AgentID: t.AgentID, Latest: true,
			CreatedAt: nanos(t.CreatedAt), UpdatedAt: nanos(t.UpdatedAt),
			Metadata: meta, MetadataKV: kv, Body: string(t.Body),
		}
		if _, err := s.tasks.InsertOne(ctx, d); err != nil {
			if isDuplicate(err) {
				continue // another writer took this version; compare with it again
			}
			return t, fmt.Errorf("put task %s version %d: %w", t.ID, t.Version, err)
		}
		if _, err := s.tasks.UpdateMany(ctx,
			bson.D{{Key: "id", Value: t.ID}, {Key: "version", Value: bson.D{{Key: "$lt", Value: t.Version}}}, {Key: "latest", Value: true}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "latest", Value: false}}}}); err != nil {
			return t, fmt.Errorf("put task %s version %d: unmark older versions: %w", t.ID, t.Version, err)
		}
		t.CreatedAt, t.UpdatedAt = fromNanos(d.CreatedAt), fromNanos(d.UpdatedAt)
		return t, nil
	}
	return t, fmt.Errorf("put task %s: %d concurrent writers took every version tried", t.ID, putTaskAttempts)
}

// GetTask reads a version of a task (0: the latest).
func (s *State) GetTask(ctx context.Context, id string, version int) (engine.Task, error) {
	filter := bson.D{{Key: "id", Value: id}}
	if version > 0 {
		filter = append(filter, bson.E{Key: "version", Value: version})
	}
	var d taskDoc
	err := s.tasks.FindOne(ctx, filter, options.FindOne().SetSort(bson.D{{Key: "version", Value: -1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return engine.Task{}, engine.ErrNotFound
	}
	if err != nil {
		return engine.Task{}, fmt.Errorf("get task %s: %w", id, err)
	}
	return d.task(), nil
}

// ListTasks lists the latest version of each task of an agent.
//
// The query reads every version marked latest in the requested order; the
// metadata filter and paging are applied here, after keeping only the
// highest marked version of each task, so a version left marked by an
// interrupted PutTask can neither show nor hide a task. An agent has few
// tasks, so reading them all is cheap.
func (s *State) ListTasks(ctx context.Context, q engine.ListQuery) ([]engine.Task, error) {
	filter := bson.D{{Key: "latest", Value: true}}
	if q.Parent != "" {
		filter = append(filter, bson.E{Key: "agent_id", Value: q.Parent})
	}
	sortBy := listSort(q)
	sortBy[1].Key = "_id" // the version's insertion order
	cur, err := s.tasks.Find(ctx, filter, options.Find().SetSort(sortBy))
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	var docs []taskDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	newest := make(map[string]int, len(docs))
	for _, d := range docs {
		newest[d.ID] = max(newest[d.ID], d.Version)
	}
	out := []engine.Task{}
	skipped := 0
	for _, d := range docs {
		if d.Version != newest[d.ID] || !hasPairs(d.MetadataKV, q.MetadataFilter) {
			continue
		}
		if skipped < q.Offset {
			skipped++
			continue
		}
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
		out = append(out, d.task())
	}
	return out, nil
}

// ---- executions ----

// executionDoc is an engine_executions document. advance_token names the
// Advance call that last wrote it (see Advance).
type executionDoc struct {
	ID              string        `bson:"_id"`
	TaskID          string        `bson:"task_id"`
	TaskVersion     int           `bson:"task_version"`
	Status          string        `bson:"status"`
	CreatedAt       int64         `bson:"created_at"`
	UpdatedAt       int64         `bson:"updated_at"`
	Ord             bson.ObjectID `bson:"ord"`
	Metadata        string        `bson:"metadata"`
	MetadataKV      []string      `bson:"metadata_kv"`
	Input           string        `bson:"input"`
	Output          string        `bson:"output"`
	Error           string        `bson:"error"`
	TransitionCount int           `bson:"transition_count"`
	Checkpoint      string        `bson:"checkpoint"`
	AdvanceToken    string        `bson:"advance_token"`
	LeaseOwner      string        `bson:"lease_owner"`
	LeaseToken      string        `bson:"lease_token"`
	LeaseUntil      int64         `bson:"lease_until"` // 0: no lease
	Crashes         int           `bson:"crashes"`
	TraceParent     string        `bson:"trace_parent,omitempty"` // absent on executions created before traces were kept
}

func (d executionDoc) execution() engine.Execution {
	e := engine.Execution{
		ID: d.ID, TaskID: d.TaskID, TaskVersion: d.TaskVersion, Status: d.Status,
		Error: d.Error, TransitionCount: d.TransitionCount,
		CreatedAt: fromNanos(d.CreatedAt), UpdatedAt: fromNanos(d.UpdatedAt),
		Metadata: decodeMeta(d.Metadata), Input: map[string]any{},
	}
	_ = unmarshalNumbers([]byte(d.Input), &e.Input)
	_ = unmarshalNumbers([]byte(d.Output), &e.Output)
	if d.Checkpoint != "" {
		e.Checkpoint = json.RawMessage(d.Checkpoint)
	}
	e.LeaseOwner, e.LeaseToken, e.Crashes, e.TraceParent = d.LeaseOwner, d.LeaseToken, d.Crashes, d.TraceParent
	if d.LeaseUntil != 0 {
		e.LeaseUntil = fromNanos(d.LeaseUntil)
	}
	return e
}

func leaseNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return nanos(t)
}

// CreateExecution inserts a new execution.
func (s *State) CreateExecution(ctx context.Context, e engine.Execution) error {
	meta, kv, err := encodeMeta(e.Metadata)
	if err != nil {
		return fmt.Errorf("encode metadata of execution %s: %w", e.ID, err)
	}
	in, err := jsonText(e.Input)
	if err != nil {
		return fmt.Errorf("encode input of execution %s: %w", e.ID, err)
	}
	out, err := jsonText(e.Output)
	if err != nil {
		return fmt.Errorf("encode output of execution %s: %w", e.ID, err)
	}
	d := executionDoc{
		ID: e.ID, TaskID: e.TaskID, TaskVersion: e.TaskVersion, Status: e.Status,
		CreatedAt: nanos(e.CreatedAt), UpdatedAt: nanos(e.UpdatedAt), Ord: bson.NewObjectID(),
		Metadata: meta, MetadataKV: kv, Input: in, Output: out, Error: e.Error,
		TransitionCount: e.TransitionCount, Checkpoint: string(e.Checkpoint),
		LeaseOwner: e.LeaseOwner, LeaseToken: e.LeaseToken, LeaseUntil: leaseNanos(e.LeaseUntil), Crashes: e.Crashes,
		TraceParent: e.TraceParent,
	}
	if _, err := s.executions.InsertOne(ctx, d); err != nil {
		return fmt.Errorf("create execution %s: %w", e.ID, err)
	}
	return nil
}

// GetExecution reads one execution.
func (s *State) GetExecution(ctx context.Context, id string) (engine.Execution, error) {
	var d executionDoc
	err := s.executions.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return engine.Execution{}, engine.ErrNotFound
	}
	if err != nil {
		return engine.Execution{}, fmt.Errorf("get execution %s: %w", id, err)
	}
	return d.execution(), nil
}

func (s *State) findExecutions(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]engine.Execution, error) {
	cur, err := s.executions.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	var docs []executionDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list executions: %w", err)
	}
	out := make([]engine.Execution, len(docs))
	for i, d := range docs {
		out[i] = d.execution()
	}
	return out, nil
}

// ListExecutions pages the executions of a task.
func (s *State) ListExecutions(ctx context.Context, q engine.ListQuery) ([]engine.Execution, error) {
	return s.findExecutions(ctx, listFilter(q, bson.D{{Key: "task_id", Value: q.Parent}}), listOptions(q))
}

// ExecutionsByStatus lists executions in the given statuses, oldest first.
func (s *State) ExecutionsByStatus(ctx context.Context, statuses ...string) ([]engine.Execution, error) {
	if len(statuses) == 0 {
		return nil, nil
	}
	return s.findExecutions(ctx, bson.D{{Key: "status", Value: bson.D{{Key: "$in", Value: statuses}}}},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "ord", Value: 1}}))
}

// ---- advance and transitions ----

// transitionDoc is one entry of an execution's log, written by the Advance
// call named by token; committed is set once that call is known to have won.
type transitionDoc struct {
	OID         bson.ObjectID `bson:"_id"`
	ID          string        `bson:"id"`
	ExecutionID string        `bson:"execution_id"`
	Seq         int           `bson:"seq"`
	Type        string        `bson:"type"`
	CreatedAt   int64         `bson:"created_at"`
	Body        string        `bson:"body"`
	Token       string        `bson:"token"`
	Committed   bool          `bson:"committed"`
}

type transitionBody struct {
	Output    any            `json:"output"`
	Current   engine.Cursor  `json:"current"`
	Next      *engine.Cursor `json:"next"`
	StepLabel string         `json:"step_label,omitempty"`
	Metadata  map[string]any `json:"metadata,omitempty"`
}

// Advance updates an execution and appends transitions, guarded by the
// expected current status, all or nothing as any reader observes it.
//
// Without transactions the write is staged. A transition is visible (to
// ListTransitions) when its seq is at most the execution's transition_count
// and it is committed or was written by the call named in the execution's
// advance_token. So:
//
//  1. Read the execution. Unless its status is in from and its
//     transition_count is the one e's new transitions continue, refuse with
//     ErrConflict, having written nothing.
//  2. Mark the previous winner's (advance_token's) transitions committed,
//     so they stay visible once the token changes in step 4.
//  3. Insert the new transitions under a fresh token, uncommitted: no
//     reader shows them, since no execution names the token yet.
//  4. Update the execution only if its status, transition_count and
//     advance_token are still what step 1 read, setting the new count and
//     token. This single-document write is the commit point: the execution
//     and its new transitions become visible together. If it matches
//     nothing, another call got there first: delete this call's
//     transitions and return ErrConflict.
//  5. Mark this call's transitions committed and delete what calls that
//     lost, or stopped before cleaning up, left at the positions this call
//     took. Both are tidying that the next Advance or reader does not need.
//     (A loser deletes its own entries; only one that stops before doing
//     so, after this sweep, leaves entries behind, which no reader shows.)
//
// Each call's transitions are separate documents under its own token, so a
// loser never overwrites the winner's entries at the same positions.
func (s *State) Advance(ctx context.Context, e engine.Execution, from []string, trs []engine.Transition) error {
	if len(from) == 0 {
		return engine.ErrConflict // no status is expected, so none matches
	}
	prevCount := e.TransitionCount - len(trs)
	for i, tr := range trs {
		if tr.Seq != prevCount+1+i {
			return fmt.Errorf("advance execution %s: transition %d has seq %d, want %d (count %d)",
				e.ID, i, tr.Seq, prevCount+1+i, e.TransitionCount)
		}
	}
	meta, kv, err := encodeMeta(e.Metadata)
	if err != nil {
		return fmt.Errorf("encode metadata of execution %s: %w", e.ID, err)
	}
	out, err := jsonText(e.Output)
	if err != nil {
		return fmt.Errorf("encode output of execution %s: %w", e.ID, err)
	}
	token := bson.NewObjectID().Hex()
	docs := make([]any, len(trs))
	for i, tr := range trs {
		body, err := json.Marshal(transitionBody{tr.Output, tr.Current, tr.Next, tr.StepLabel, tr.Metadata})
		if err != nil {
			return fmt.Errorf("encode transition %d of %s: %w", tr.Seq, e.ID, err)
		}
		docs[i] = transitionDoc{
			OID: bson.NewObjectID(), ID: tr.ID, ExecutionID: e.ID, Seq: tr.Seq, Type: tr.Type,
			CreatedAt: nanos(tr.CreatedAt), Body: string(body), Token: token,
		}
	}

	// 1. Check.
	var cur executionDoc
	err = s.executions.FindOne(ctx, bson.D{{Key: "_id", Value: e.ID}},
		options.FindOne().SetProjection(bson.D{{Key: "status", Value: 1}, {Key: "transition_count", Value: 1},
			{Key: "advance_token", Value: 1}, {Key: "lease_token", Value: 1}})).
		Decode(&cur)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return engine.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("advance execution %s: %w", e.ID, err)
	}
	fenced := e.LeaseToken != ""
	if !slices.Contains(from, cur.Status) || cur.TransitionCount != prevCount || (fenced && cur.LeaseToken != e.LeaseToken) {
		return engine.ErrConflict
	}

	// 2. Keep the previous winner's transitions visible.
	if cur.AdvanceToken != "" {
		if err := s.commitTransitions(ctx, e.ID, cur.AdvanceToken); err != nil {
			return fmt.Errorf("advance execution %s: %w", e.ID, err)
		}
	}

	// 3. Stage.
	if len(docs) > 0 {
		if _, err := s.transitions.InsertMany(ctx, docs); err != nil {
			s.discard(e.ID, token)
			return fmt.Errorf("append transitions of %s: %w", e.ID, err)
		}
	}

	// 4. Commit. A fenced write also needs the writer's lease; an
	// unfenced one (the API's) clears the lease.
	filter := bson.D{
		{Key: "_id", Value: e.ID},
		{Key: "status", Value: bson.D{{Key: "$in", Value: from}}},
		{Key: "transition_count", Value: prevCount},
		{Key: "advance_token", Value: cur.AdvanceToken},
	}
	set := bson.D{
		{Key: "status", Value: e.Status}, {Key: "updated_at", Value: nanos(e.UpdatedAt)},
		{Key: "metadata", Value: meta}, {Key: "metadata_kv", Value: kv}, {Key: "output", Value: out},
		{Key: "error", Value: e.Error}, {Key: "transition_count", Value: e.TransitionCount},
		{Key: "checkpoint", Value: string(e.Checkpoint)}, {Key: "advance_token", Value: token},
		{Key: "crashes", Value: e.Crashes},
	}
	if fenced {
		filter = append(filter, bson.E{Key: "lease_token", Value: e.LeaseToken})
	} else {
		set = append(set, bson.E{Key: "lease_owner", Value: ""}, bson.E{Key: "lease_token", Value: ""},
			bson.E{Key: "lease_until", Value: int64(0)})
	}
	res, err := s.executions.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: set}})
	if err != nil {
		// The update may or may not have been applied; the transitions stay,
		// harmless if it was not (nothing names the token) and needed if it was.
		return fmt.Errorf("advance execution %s: %w", e.ID, err)
	}
	if res.MatchedCount == 0 {
		s.discard(e.ID, token)
		return engine.ErrConflict
	}

	// 5. Tidy.
	if len(docs) > 0 {
		_ = s.commitTransitions(ctx, e.ID, token)
		_, _ = s.transitions.DeleteMany(ctx, bson.D{
			{Key: "execution_id", Value: e.ID},
			{Key: "seq", Value: bson.D{{Key: "$gt", Value: prevCount}, {Key: "$lte", Value: e.TransitionCount}}},
			{Key: "committed", Value: false},
			{Key: "token", Value: bson.D{{Key: "$ne", Value: token}}},
		})
	}
	return nil
}

// commitTransitions marks the transitions a winning Advance call wrote.
func (s *State) commitTransitions(ctx context.Context, executionID, token string) error {
	_, err := s.transitions.UpdateMany(ctx,
		bson.D{{Key: "token", Value: token}, {Key: "execution_id", Value: executionID}, {Key: "committed", Value: false}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "committed", Value: true}}}})
	if err != nil {
		return fmt.Errorf("commit transitions: %w", err)
	}
	return nil
}

// discard deletes the transitions of an Advance call that lost. It runs
// even when the caller's context is done; if it fails, the entries stay
// invisible and the next successful Advance deletes them.
func (s *State) discard(executionID, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = s.transitions.DeleteMany(ctx, bson.D{{Key: "execution_id", Value: executionID}, {Key: "token", Value: token}})
}

// ListTransitions pages an execution's visible transitions by position.
func (s *State) ListTransitions(ctx context.Context, executionID string, limit, offset int, desc bool) ([]engine.Transition, error) {
	var ex executionDoc
	err := s.executions.FindOne(ctx, bson.D{{Key: "_id", Value: executionID}},
		options.FindOne().SetProjection(bson.D{{Key: "transition_count", Value: 1}, {Key: "advance_token", Value: 1}})).
		Decode(&ex)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list transitions of %s: %w", executionID, err)
	}
	visible := bson.A{bson.D{{Key: "committed", Value: true}}}
	if ex.AdvanceToken != "" {
		visible = append(visible, bson.D{{Key: "token", Value: ex.AdvanceToken}})
	}
	dir := 1
	if desc {
		dir = -1
	}
	opts := options.Find().SetSort(bson.D{{Key: "seq", Value: dir}})
	if offset > 0 {
		opts.SetSkip(int64(offset))
	}
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.transitions.Find(ctx, bson.D{
		{Key: "execution_id", Value: executionID},
		{Key: "seq", Value: bson.D{{Key: "$lte", Value: ex.TransitionCount}}},
		{Key: "$or", Value: visible},
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("list transitions of %s: %w", executionID, err)
	}
	var docs []transitionDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list transitions of %s: %w", executionID, err)
	}
	out := make([]engine.Transition, len(docs))
	for i, d := range docs {
		var tb transitionBody
		if err := unmarshalNumbers([]byte(d.Body), &tb); err != nil {
			return nil, fmt.Errorf("decode transition %s: %w", d.ID, err)
		}
		out[i] = engine.Transition{
			ID: d.ID, ExecutionID: executionID, Seq: d.Seq, Type: d.Type, CreatedAt: fromNanos(d.CreatedAt),
			Output: tb.Output, Current: tb.Current, Next: tb.Next, StepLabel: tb.StepLabel, Metadata: tb.Metadata,
		}
	}
	return out, nil
}

// ---- leases ----

// claimable matches executions an engine may claim at now: queued,
// starting or running, with no lease or one that ran out. Executions
// written before leases have no lease_until at all.
func claimable(now time.Time) bson.D {
	return bson.D{
		{Key: "status", Value: bson.D{{Key: "$in", Value: engine.Claimable}}},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "lease_until", Value: bson.D{{Key: "$lte", Value: nanos(now)}}}},
			bson.D{{Key: "lease_until", Value: bson.D{{Key: "$exists", Value: false}}}},
		}},
	}
}

func claimUpdate(owner, token string, until time.Time) bson.D {
	return bson.D{{Key: "$set", Value: bson.D{
		{Key: "lease_owner", Value: owner}, {Key: "lease_token", Value: token}, {Key: "lease_until", Value: nanos(until)},
	}}}
}

// ClaimExecution takes the lease of one claimable execution: the condition
// is in the filter of one findOneAndUpdate, so two claimers cannot both win.
func (s *State) ClaimExecution(ctx context.Context, id, owner, token string, until, now time.Time) (engine.Execution, error) {
	filter := append(bson.D{{Key: "_id", Value: id}}, claimable(now)...)
	x, err := s.claimOne(ctx, filter, nil, owner, token, until)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return engine.Execution{}, engine.ErrConflict
	}
	if err != nil {
		return engine.Execution{}, fmt.Errorf("claim execution %s: %w", id, err)
	}
	return x, nil
}

// claimOne claims the first execution filter matches. It reads the
// document as it was before the claim, to tell whether the claim took over
// a lease that ran out mid-run (its owner stopped), and then counts that
// crash under the new lease: a count lost to a crash in between only
// delays the poison-pill check by one claim.
func (s *State) claimOne(ctx context.Context, filter, sort bson.D, owner, token string, until time.Time) (engine.Execution, error) {
	opts := options.FindOneAndUpdate().SetReturnDocument(options.Before)
	if sort != nil {
		opts.SetSort(sort)
	}
	var d executionDoc
	if err := s.executions.FindOneAndUpdate(ctx, filter, claimUpdate(owner, token, until), opts).Decode(&d); err != nil {
		return engine.Execution{}, err
	}
	crashed := d.LeaseOwner != "" && (d.Status == engine.StatusStarting || d.Status == engine.StatusRunning)
	d.LeaseOwner, d.LeaseToken, d.LeaseUntil = owner, token, nanos(until)
	if crashed {
		_, err := s.executions.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "lease_token", Value: token}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "crashes", Value: 1}}}})
		if err != nil {
			return engine.Execution{}, fmt.Errorf("count the crash of %s: %w", d.ID, err)
		}
		d.Crashes++
	}
	return d.execution(), nil
}

// ClaimExecutions claims up to limit executions, one findOneAndUpdate each.
func (s *State) ClaimExecutions(ctx context.Context, owner string, now, until time.Time, limit int) ([]engine.Execution, error) {
	var out []engine.Execution
	for range max(limit, 0) {
		x, err := s.claimOne(ctx, claimable(now), bson.D{{Key: "created_at", Value: 1}}, owner, uuid.NewString(), until)
		if errors.Is(err, mongo.ErrNoDocuments) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("claim executions: %w", err)
		}
		out = append(out, x)
	}
	return out, nil
}

// ExtendLease moves a held lease on.
func (s *State) ExtendLease(ctx context.Context, id, token string, until time.Time) error {
	return s.leaseWrite(ctx, "extend lease of", id, token, bson.D{{Key: "lease_until", Value: nanos(until)}})
}

// LeaseToken reads the token of an execution's lease.
func (s *State) LeaseToken(ctx context.Context, id string) (string, error) {
	var d struct {
		LeaseToken string `bson:"lease_token"`
	}
	err := s.executions.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "lease_token", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", engine.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("read lease of %s: %w", id, err)
	}
	return d.LeaseToken, nil
}

// ReleaseLease clears a held lease.
func (s *State) ReleaseLease(ctx context.Context, id, token string) error {
	return s.leaseWrite(ctx, "release lease of", id, token, bson.D{
		{Key: "lease_owner", Value: ""}, {Key: "lease_token", Value: ""}, {Key: "lease_until", Value: int64(0)}})
}

func (s *State) leaseWrite(ctx context.Context, what, id, token string, set bson.D) error {
	if token == "" {
		return engine.ErrConflict
	}
	res, err := s.executions.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "lease_token", Value: token}},
		bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return fmt.Errorf("%s execution %s: %w", what, id, err)
	}
	if res.MatchedCount == 0 {
		return engine.ErrConflict
	}
	return nil
}

// unmarshalNumbers decodes JSON keeping numbers as json.Number, so that a
// whole float (2.0) stays a float and a big int stays exact, as in Julep.
func unmarshalNumbers(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}
