package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"time"
)

// docOwner is who a doc belongs to: a user or an agent, as Julep's
// doc_owners has it.
type docOwner struct {
	Role string // user | agent
	ID   string
}

// parent is the Resource.Parent docs of o are kept under. User docs keep the
// bare user id (the layout before agent docs existed); agent docs are
// prefixed so a client-chosen agent id equal to a user id cannot mix them.
func (o docOwner) parent() string {
	if o.Role == "agent" {
		return "agent:" + o.ID
	}
	return o.ID
}

func (o docOwner) view() map[string]any { return map[string]any{"id": o.ID, "role": o.Role} }

func ownerOf(parent string) docOwner {
	if len(parent) > 6 && parent[:6] == "agent:" {
		return docOwner{Role: "agent", ID: parent[6:]}
	}
	return docOwner{Role: "user", ID: parent}
}

func (e *Engine) ownerExists(ctx context.Context, o docOwner) error {
	if o.Role == "agent" {
		_, err := e.getResource(ctx, KindAgent, o.ID)
		return err
	}
	return e.userExists(ctx, o.ID)
}

// docChunks are a doc's content as Julep chunks it: a list is one chunk per
// element, a string one chunk.
func docChunks(content any) []string {
	switch c := content.(type) {
	case string:
		return []string{c}
	case []any:
		out := make([]string, 0, len(c))
		for _, p := range c {
			s, _ := p.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// createOwnedDoc adds a doc to its owner with an embedding of each chunk
// (title and chunk, as Julep's vectorizer embeds them). Content is a
// string or a list of strings, each one chunk. From a running step (sc not
// nil) the doc's id is derived from the step and the write is fenced by the
// run's lease; from the API the id is random.
func (e *Engine) createOwnedDoc(ctx context.Context, o docOwner, in map[string]any, sc *stepScope) (map[string]any, error) {
	if err := e.ownerExists(ctx, o); err != nil {
		return nil, err
	}
	var details []any
	title, ok := in["title"].(string)
	if !ok || title == "" {
		details = append(details, fieldError("title", "is required"))
	} else if len([]rune(title)) > 800 {
		details = append(details, fieldError("title", "must be at most 800 characters"))
	}
	switch c := in["content"].(type) {
	case string:
	case []any:
		if len(c) == 0 {
			details = append(details, fieldError("content", "must not be an empty list"))
		}
		if len(c) > maxDocChunks {
			details = append(details, fieldError("content", fmt.Sprintf("must have at most %d chunks", maxDocChunks)))
		}
		for _, p := range c {
			if _, ok := p.(string); !ok {
				details = append(details, fieldError("content", "must be a string or a list of strings"))
				break
			}
		}
	default:
		details = append(details, fieldError("content", "must be a string or a list of strings"))
	}
	meta, err := asMetadata(in["metadata"])
	if err != nil {
		details = append(details, fieldError("metadata", err.Error()))
	}
	if len(details) > 0 {
		return nil, validationError(details)
	}
	chunks := docChunks(in["content"])
	texts := make([]string, len(chunks))
	for i, c := range chunks {
		texts[i] = title + "\n\n" + c
	}
	vecs, err := e.embed.Embed(ctx, texts)
	if err != nil {
		return nil, errorf(http.StatusBadGateway, "embed doc: %v", err)
	}
	vecs32 := make([][]float32, len(vecs))
	for i, v := range vecs {
		vecs32[i] = make([]float32, len(v))
		for j, x := range v {
			vecs32[i][j] = float32(x)
		}
	}
	dims := 0
	if len(vecs) > 0 {
		dims = len(vecs[0])
	}
	id, fence := newID(), (*Fence)(nil)
	if sc != nil {
		id, fence = sc.docID(), &sc.fence
	}
	_, single := in["content"].(string)
	// The vectors first: a doc seen is a doc with its vectors (a crash
	// between the two leaves vectors of no doc, which nothing reads).
	if _, err := e.putResource(ctx, KindDocVectors, id, o.parent(), map[string]any{},
		map[string]any{"id": id, "vectors": encodeVectors(vecs32)}, fence); err != nil {
		return nil, err
	}
	body := map[string]any{"id": id, "title": title, "content": in["content"], "metadata": meta,
		"modality": "text", "language": "english", "embedding_model": e.embed.Name(),
		"embedding_dimensions": float64(dims)}
	if ei, ok := in["embed_instruction"].(string); ok {
		body["embed_instruction"] = ei
	}
	out, err := e.putResource(ctx, KindDoc, id, o.parent(), meta, body, fence)
	if err != nil {
		return nil, err
	}
	delete(out, "updated_at")
	out["embeddings"] = embeddingsView(vecs32, single)
	return out, nil
}

// KindDocVectors holds a doc's chunk vectors apart from the doc (same id
// and parent), so listing docs and text search do not read them. Body:
// {"id", "vectors": [base64 of little-endian float32s, one per chunk]}.
const KindDocVectors = "doc_vectors"

func encodeVectors(vs [][]float32) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		b := make([]byte, 4*len(v))
		for j, x := range v {
			binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(x))
		}
		out[i] = base64.StdEncoding.EncodeToString(b)
	}
	return out
}

// decodeVectors reads a KindDocVectors body. Vector search reads every
// doc's vectors, so the body is scanned by hand (a JSON decode of it costs
// most of a search); a body it cannot scan goes through encoding/json.
func decodeVectors(raw json.RawMessage) ([][]float32, error) {
	bs, ok := scanVectors(raw)
	if !ok {
		var body struct {
			Vectors [][]byte `json:"vectors"` // encoding/json decodes base64 into []byte
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			return nil, err
		}
		bs = body.Vectors
	}
	out := make([][]float32, len(bs))
	for i, b := range bs {
		if len(b)%4 != 0 {
			return nil, fmt.Errorf("vector %d has %d bytes", i, len(b))
		}
		v := make([]float32, len(b)/4)
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
		}
		out[i] = v
	}
	return out, nil
}

// scanVectors reads the base64 strings of `"vectors": [...]`; false when
// the body is not in the plain form encodeVectors writes.
func scanVectors(raw []byte) ([][]byte, bool) {
	i := bytes.Index(raw, []byte(`"vectors"`))
	if i < 0 || bytes.IndexByte(raw, '\\') >= 0 {
		return nil, false
	}
	rest := bytes.TrimLeft(raw[i+len(`"vectors"`):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return nil, false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) == 0 || rest[0] != '[' {
		return nil, false
	}
	rest = rest[1:]
	var out [][]byte
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n,")
		if len(rest) == 0 {
			return nil, false
		}
		if rest[0] == ']' {
			return out, true
		}
		if rest[0] != '"' {
			return nil, false
		}
		end := bytes.IndexByte(rest[1:], '"')
		if end < 0 {
			return nil, false
		}
		b := make([]byte, base64.StdEncoding.DecodedLen(end))
		n, err := base64.StdEncoding.Decode(b, rest[1:1+end])
		if err != nil {
			return nil, false
		}
		out = append(out, b[:n])
		rest = rest[2+end:]
	}
}

// embeddingsView is a doc's `embeddings` as Julep answers them: one vector
// for a doc whose content is one string, else one per chunk.
func embeddingsView(vs [][]float32, single bool) any {
	if single && len(vs) == 1 {
		return vs[0]
	}
	return vs
}

// withEmbeddings sets `embeddings` on docs (decoded bodies of docs under
// parent): their vectors when include, else null.
func (e *Engine) withEmbeddings(ctx context.Context, parent string, docs []any, include bool) error {
	vecs := map[string][][]float32{}
	if include && len(docs) > 0 {
		var err error
		if vecs, err = e.docVectors(ctx, parent, nil); err != nil {
			return err
		}
	}
	for _, d := range docs {
		m := d.(map[string]any)
		id, _ := m["id"].(string)
		if v, ok := vecs[id]; ok {
			_, single := m["content"].(string)
			m["embeddings"] = embeddingsView(v, single)
		} else {
			m["embeddings"] = nil
		}
	}
	return nil
}

// docVectors reads the vectors of the docs under parent (of the one doc id
// when given) by doc id.
func (e *Engine) docVectors(ctx context.Context, parent string, id *string) (map[string][][]float32, error) {
	var rs []Resource
	if id != nil {
		r, err := e.state.GetResource(ctx, KindDocVectors, *id)
		if errors.Is(err, ErrNotFound) {
			return map[string][][]float32{}, nil
		}
		if err != nil {
			return nil, err
		}
		rs = []Resource{r}
	} else {
		var err error
		if rs, err = e.state.ListResources(ctx, ListQuery{Kind: KindDocVectors, Parent: parent}); err != nil {
			return nil, err
		}
	}
	out := make(map[string][][]float32, len(rs))
	for _, r := range rs {
		v, err := decodeVectors(r.Body)
		if err != nil {
			return nil, fmt.Errorf("decode vectors of doc %s: %w", r.ID, err)
		}
		out[r.ID] = v
	}
	return out, nil
}

// deleteDocVectors removes a doc's vectors (under the doc's fence when
// given).
func (e *Engine) deleteDocVectors(ctx context.Context, id string, f *Fence) error {
	var err error
	if f != nil {
		err = e.state.DeleteResourceFenced(ctx, KindDocVectors, id, *f)
	} else {
		err = e.state.DeleteResource(ctx, KindDocVectors, id)
	}
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// maxDocChunks bounds the embedding calls one doc create makes.
const maxDocChunks = 1000

func (e *Engine) deleteOwnedDoc(ctx context.Context, o docOwner, docID string, sc *stepScope) (map[string]any, error) {
	r, err := e.state.GetResource(ctx, KindDoc, docID)
	if errors.Is(err, ErrNotFound) || (err == nil && r.Parent != o.parent()) {
		return nil, notFound("doc", docID)
	}
	if err != nil {
		return nil, err
	}
	var fence *Fence
	if sc != nil {
		fence = &sc.fence
		err = e.state.DeleteResourceFenced(ctx, KindDoc, docID, sc.fence)
	} else {
		err = e.state.DeleteResource(ctx, KindDoc, docID)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err := e.deleteDocVectors(ctx, docID, fence); err != nil {
		return nil, err
	}
	return map[string]any{"id": docID, "deleted_at": ts(e.now()), "jobs": []any{}}, nil
}

// deleteOwnedDocs is the bulk delete: every doc of o whose metadata
// contains filter (all of them with delete_all).
func (e *Engine) deleteOwnedDocs(ctx context.Context, o docOwner, in map[string]any) (map[string]any, error) {
	filter, _ := in["metadata_filter"].(map[string]any)
	all, _ := in["delete_all"].(bool)
	if len(filter) == 0 && !all {
		return nil, validationError([]any{fieldError("metadata_filter", "is required unless delete_all is true")})
	}
	rs, err := e.state.ListResources(ctx, ListQuery{Kind: KindDoc, Parent: o.parent()})
	if err != nil {
		return nil, err
	}
	ids := []any{}
	for _, r := range rs {
		if !all && !containsJSON(r.Metadata, filter) {
			continue
		}
		if err := e.state.DeleteResource(ctx, KindDoc, r.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if err := e.deleteDocVectors(ctx, r.ID, nil); err != nil {
			return nil, err
		}
		ids = append(ids, r.ID)
	}
	return map[string]any{"id": o.ID, "deleted_at": ts(e.now()), "jobs": []any{}, "deleted": ids}, nil
}

// searchChunk is one chunk of one doc, the unit Julep's search ranks.
type searchChunk struct {
	doc    *storedDoc
	owner  docOwner
	index  int
	text   string
	vec    []float32
	terms  map[string]int
	n      int
	score  float64 // text: BM25; vector: cosine distance; hybrid: distance
	hasVec bool
}

// searchOwnedDocs is Julep's doc search over the docs of owners, in the
// mode the request's fields choose: `text` alone is text search, `vector`
// alone vector search, both hybrid. Text search ranks chunks by BM25 over
// title and chunk (Julep uses Postgres full-text ts_rank; the engine has no
// Postgres) and answers each doc once, with its best chunk; distance is
// 1/(1+score). Vector search ranks chunks by cosine distance, keeping those
// within 1-confidence (all when confidence is -1), as Julep's
// search_by_vector. Hybrid fuses both candidate lists (limit×k_multiplier
// each) as Julep's search_hybrid does: each list's scores DBSF-normalised,
// distance = 1 - ((1-alpha)·text + alpha·vector). Julep's SQL (migration
// 000044) feeds the vector candidates' cosine distance into that sum, which
// ranks the farthest vectors first; the engine feeds their similarity
// (1 - distance), as the spec defines alpha ("0 => pure BM25; 1 => pure
// vector"). For
// vector and hybrid, mmr_strength > 0 fetches min(2·limit, limit+10)
// candidates and re-ranks them by maximal marginal relevance with lambda
// 1-mmr_strength, as Julep's apply_mmr_to_docs.
func (e *Engine) searchOwnedDocs(ctx context.Context, owners []docOwner, req map[string]any) (map[string]any, error) {
	start := time.Now()
	var details []any
	num := func(name string, def, lo, hi float64) float64 {
		v, ok := req[name]
		if !ok || v == nil {
			return def
		}
		f, ok := toFloat(v)
		if !ok || f < lo || f > hi {
			details = append(details, fieldError(name, fmt.Sprintf("must be a number between %g and %g", lo, hi)))
			return def
		}
		return f
	}
	limit := int(num("limit", 10, 1, 50))
	if l, ok := toFloat(req["limit"]); ok && l != math.Trunc(l) {
		details = append(details, fieldError("limit", "must be an integer"))
	}
	confidence := num("confidence", 0.5, -1, 1)
	alpha := num("alpha", 0.5, 0, 1)
	mmr := num("mmr_strength", 0.5, 0, 1)
	kmul := int(num("k_multiplier", 5, 1, 10))
	withEmb := true
	if b, ok := req["include_embeddings"].(bool); ok {
		withEmb = b
	}
	text, hasText := req["text"].(string)
	if req["text"] != nil && !hasText {
		details = append(details, fieldError("text", "must be a string"))
	}
	var query []float32
	hasVec := false
	if raw, ok := req["vector"]; ok && raw != nil {
		xs, ok := raw.([]any)
		if !ok || len(xs) == 0 {
			details = append(details, fieldError("vector", "must be a non-empty list of numbers"))
		}
		for _, x := range xs {
			f, ok := toFloat(x)
			if !ok {
				details = append(details, fieldError("vector", "must be a non-empty list of numbers"))
				break
			}
			query = append(query, float32(f))
		}
		hasVec = len(query) > 0
	}
	if !hasText && !hasVec && len(details) == 0 {
		details = append(details, fieldError("text", "is required (or vector)"))
	}
	filter, _ := req["metadata_filter"].(map[string]any)
	if req["metadata_filter"] != nil && filter == nil {
		details = append(details, fieldError("metadata_filter", "must be an object"))
	}
	if len(details) > 0 {
		return nil, validationError(details)
	}

	var chunks []*searchChunk
	for _, o := range owners {
		rs, err := e.state.ListResources(ctx, ListQuery{Kind: KindDoc, Parent: o.parent()})
		if err != nil {
			return nil, err
		}
		var ownerVecs map[string][][]float32
		if hasVec {
			if ownerVecs, err = e.docVectors(ctx, o.parent(), nil); err != nil {
				return nil, err
			}
		}
		for _, r := range rs {
			if !containsJSON(r.Metadata, filter) {
				continue
			}
			var d storedDoc
			if err := json.Unmarshal(r.Body, &d); err != nil {
				return nil, fmt.Errorf("decode doc %s: %w", r.ID, err)
			}
			title := d.Title
			parts := docChunks(d.Content)
			if len(parts) == 0 {
				parts = []string{""}
			}
			vecs := ownerVecs[r.ID]
			for i, p := range parts {
				c := &searchChunk{doc: &d, owner: o, index: i, text: p}
				if i < len(vecs) {
					c.vec, c.hasVec = vecs[i], true
				}
				if hasVec && c.hasVec && len(c.vec) != len(query) {
					return nil, validationError([]any{fieldError("vector", fmt.Sprintf("has %d dimensions; the docs' embeddings have %d", len(query), len(c.vec)))})
				}
				toks := tokenize(title + " " + p)
				c.terms = map[string]int{}
				for _, t := range toks {
					c.terms[t]++
				}
				c.n = len(toks)
				chunks = append(chunks, c)
			}
		}
	}

	k := limit
	if hasVec && mmr > 0 {
		k = min(limit*2, limit+10)
	}
	var hits []*searchChunk
	switch {
	case hasText && !hasVec:
		hits = bestPerDoc(bm25(chunks, tokenize(text)), limit)
		for _, h := range hits {
			h.score = 1 / (1 + h.score)
		}
	case hasVec && !hasText:
		hits = vectorHits(chunks, query, confidence)
		if len(hits) > k {
			hits = hits[:k]
		}
	default:
		hits = hybridHits(chunks, tokenize(text), query, confidence, alpha, k*kmul, k)
	}
	if hasVec && mmr > 0 && len(hits) > limit {
		hits = applyMMR(hits, query, limit, mmr)
	}
	if len(hits) > limit {
		hits = hits[:limit]
	}
	docs := make([]any, 0, len(hits))
	for _, h := range hits {
		snippet := map[string]any{"index": float64(h.index), "content": h.text}
		if withEmb && h.hasVec {
			snippet["embedding"] = h.vec
		}
		docs = append(docs, map[string]any{
			"id": h.doc.ID, "title": h.doc.Title, "owner": h.owner.view(),
			"snippet": snippet, "distance": h.score, "metadata": h.doc.Metadata,
		})
	}
	return map[string]any{"docs": docs, "time": time.Since(start).Seconds()}, nil
}

// storedDoc is the part of a stored doc search reads.
type storedDoc struct {
	ID       string         `json:"id"`
	Title    string         `json:"title"`
	Content  any            `json:"content"`
	Metadata map[string]any `json:"metadata"`
}

// bm25 scores every chunk against the query terms; chunks scoring 0 are
// dropped; the rest come best first (ties in stored order).
func bm25(chunks []*searchChunk, query []string) []*searchChunk {
	df := map[string]int{}
	total := 0
	for _, c := range chunks {
		total += c.n
		for t := range c.terms {
			df[t]++
		}
	}
	avg := 1.0
	if len(chunks) > 0 && total > 0 {
		avg = float64(total) / float64(len(chunks))
	}
	const k1, b = 1.2, 0.75
	var out []*searchChunk
	for _, c := range chunks {
		score := 0.0
		for _, q := range query {
			f := float64(c.terms[q])
			if f == 0 {
				continue
			}
			idf := math.Log(1 + (float64(len(chunks))-float64(df[q])+0.5)/(float64(df[q])+0.5))
			score += idf * f * (k1 + 1) / (f + k1*(1-b+b*float64(c.n)/avg))
		}
		if score > 0 {
			cc := *c
			cc.score = score
			out = append(out, &cc)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].score > out[j].score })
	return out
}

// bestPerDoc keeps each doc's first (best) chunk of a ranked list.
func bestPerDoc(ranked []*searchChunk, limit int) []*searchChunk {
	seen := map[string]bool{}
	var out []*searchChunk
	for _, c := range ranked {
		if seen[c.doc.ID] {
			continue
		}
		seen[c.doc.ID] = true
		out = append(out, c)
		if len(out) == limit {
			break
		}
	}
	return out
}

func cosineDistance(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
	}
	if na == 0 || nb == 0 {
		return 1
	}
	return 1 - dot/(math.Sqrt(na)*math.Sqrt(nb))
}

// vectorHits ranks the chunks that have a vector by cosine distance to
// query, keeping those within 1-confidence (confidence -1 keeps all).
func vectorHits(chunks []*searchChunk, query []float32, confidence float64) []*searchChunk {
	var out []*searchChunk
	for _, c := range chunks {
		if !c.hasVec {
			continue
		}
		d := cosineDistance(query, c.vec)
		if confidence > -1 && d > 1-confidence {
			continue
		}
		cc := *c
		cc.score = d
		out = append(out, &cc)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].score < out[j].score })
	return out
}

type chunkKey struct {
	doc   string
	owner docOwner
	index int
}

// hybridHits is Julep's search_hybrid (see searchOwnedDocs).
func hybridHits(chunks []*searchChunk, terms []string, query []float32, confidence, alpha float64, candidates, k int) []*searchChunk {
	text := bm25(chunks, terms)
	if len(text) > candidates {
		text = text[:candidates]
	}
	vec := vectorHits(chunks, query, confidence)
	if len(vec) > candidates {
		vec = vec[:candidates]
	}
	type pair struct {
		c          *searchChunk
		t, v       float64
		key        chunkKey
		firstOrder int
	}
	byKey := map[chunkKey]*pair{}
	var all []*pair
	add := func(c *searchChunk, isText bool) {
		key := chunkKey{c.doc.ID, c.owner, c.index}
		p, ok := byKey[key]
		if !ok {
			p = &pair{c: c, key: key, firstOrder: len(all)}
			byKey[key] = p
			all = append(all, p)
		}
		if isText {
			p.t = c.score
		} else {
			p.v = 1 - c.score
		}
	}
	for _, c := range text {
		add(c, true)
	}
	for _, c := range vec {
		add(c, false)
	}
	ts, vs := make([]float64, len(all)), make([]float64, len(all))
	for i, p := range all {
		ts[i], vs[i] = p.t, p.v
	}
	ts, vs = dbsfNormalize(ts), dbsfNormalize(vs)
	out := make([]*searchChunk, len(all))
	for i, p := range all {
		cc := *p.c
		cc.score = 1 - ((1-alpha)*ts[i] + alpha*vs[i])
		out[i] = &cc
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].score < out[j].score })
	if len(out) > k {
		out = out[:k]
	}
	return out
}

// dbsfNormalize is Julep's dbsf_normalize: (s - (m-3σ)) / 6σ with σ the
// sample standard deviation; fewer than two scores, or σ = 0, unchanged.
func dbsfNormalize(xs []float64) []float64 {
	if len(xs) < 2 {
		return xs
	}
	var m float64
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	sd := math.Sqrt(ss / float64(len(xs)-1))
	if sd == 0 {
		return xs
	}
	lo, hi := m-3*sd, m+3*sd
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = (x - lo) / (hi - lo)
	}
	return out
}

// applyMMR is Julep's apply_mmr_to_docs: maximal marginal relevance over the
// hits that have vectors (at least two), lambda = 1 - strength.
func applyMMR(hits []*searchChunk, query []float32, limit int, strength float64) []*searchChunk {
	var with []*searchChunk
	for _, h := range hits {
		if h.hasVec {
			with = append(with, h)
		}
	}
	if len(with) < 2 {
		return hits
	}
	lambda := 1 - strength
	k := min(limit, len(with))
	simQ := make([]float64, len(with))
	best := 0
	for i, h := range with {
		simQ[i] = 1 - cosineDistance(query, h.vec)
		if simQ[i] > simQ[best] {
			best = i
		}
	}
	idxs := []int{best}
	chosen := map[int]bool{best: true}
	for len(idxs) < k {
		bestScore, add := math.Inf(-1), -1
		for i := range with {
			if chosen[i] {
				continue
			}
			red := math.Inf(-1)
			for _, j := range idxs {
				red = math.Max(red, 1-cosineDistance(with[i].vec, with[j].vec))
			}
			if s := lambda*simQ[i] - (1-lambda)*red; s > bestScore {
				bestScore, add = s, i
			}
		}
		idxs = append(idxs, add)
		chosen[add] = true
	}
	out := make([]*searchChunk, len(idxs))
	for i, j := range idxs {
		out[i] = with[j]
	}
	return out
}
