package engine

import (
	"context"
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
	var embeddings any = vecs
	if _, one := in["content"].(string); one && len(vecs) == 1 {
		embeddings = vecs[0]
	}
	dims := 0
	if len(vecs) > 0 {
		dims = len(vecs[0])
	}
	id, fence := newID(), (*Fence)(nil)
	if sc != nil {
		id, fence = sc.docID(), &sc.fence
	}
	body := map[string]any{"id": id, "title": title, "content": in["content"], "metadata": meta,
		"modality": "text", "language": "english", "embedding_model": e.embed.Name(),
		"embedding_dimensions": float64(dims), "embeddings": embeddings}
	if ei, ok := in["embed_instruction"].(string); ok {
		body["embed_instruction"] = ei
	}
	out, err := e.putResource(ctx, KindDoc, id, o.parent(), meta, body, fence)
	if err != nil {
		return nil, err
	}
	delete(out, "updated_at")
	return out, nil
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
	if sc != nil {
		err = e.state.DeleteResourceFenced(ctx, KindDoc, docID, sc.fence)
	} else {
		err = e.state.DeleteResource(ctx, KindDoc, docID)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
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
		ids = append(ids, r.ID)
	}
	return map[string]any{"id": o.ID, "deleted_at": ts(e.now()), "jobs": []any{}, "deleted": ids}, nil
}

// docView is a stored doc as the API answers it; withEmbeddings false
// nulls the vectors (Julep's include_embeddings=false).
func docView(r Resource, withEmbeddings bool) map[string]any {
	d := decodeBody(r.Body)
	delete(d, "updated_at")
	if _, ok := d["embeddings"]; !ok || !withEmbeddings {
		d["embeddings"] = nil
	}
	return d
}

// searchChunk is one chunk of one doc, the unit Julep's search ranks.
type searchChunk struct {
	doc    map[string]any
	owner  docOwner
	index  int
	text   string
	vec    []float64
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
	var query []float64
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
			query = append(query, f)
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
		for _, r := range rs {
			if !containsJSON(r.Metadata, filter) {
				continue
			}
			d := decodeBody(r.Body)
			title, _ := d["title"].(string)
			parts := docChunks(d["content"])
			if len(parts) == 0 {
				parts = []string{""}
			}
			vecs := docVectors(d["embeddings"])
			delete(d, "embeddings")
			for i, p := range parts {
				c := &searchChunk{doc: d, owner: o, index: i, text: p}
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
			"id": h.doc["id"], "title": h.doc["title"], "owner": h.owner.view(),
			"snippet": snippet, "distance": h.score, "metadata": h.doc["metadata"],
		})
	}
	return map[string]any{"docs": docs, "time": time.Since(start).Seconds()}, nil
}

// docVectors reads a stored doc's embeddings: one vector (a one-chunk doc)
// or a list of them.
func docVectors(v any) [][]float64 {
	xs, ok := v.([]any)
	if !ok || len(xs) == 0 {
		return nil
	}
	if _, flat := xs[0].(float64); flat {
		return [][]float64{floats(xs)}
	}
	out := make([][]float64, 0, len(xs))
	for _, x := range xs {
		l, _ := x.([]any)
		out = append(out, floats(l))
	}
	return out
}

func floats(xs []any) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i], _ = x.(float64)
	}
	return out
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
	seen := map[any]bool{}
	var out []*searchChunk
	for _, c := range ranked {
		if seen[c.doc["id"]] {
			continue
		}
		seen[c.doc["id"]] = true
		out = append(out, c)
		if len(out) == limit {
			break
		}
	}
	return out
}

func cosineDistance(a, b []float64) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	if na == 0 || nb == 0 {
		return 1
	}
	return 1 - dot/(math.Sqrt(na)*math.Sqrt(nb))
}

// vectorHits ranks the chunks that have a vector by cosine distance to
// query, keeping those within 1-confidence (confidence -1 keeps all).
func vectorHits(chunks []*searchChunk, query []float64, confidence float64) []*searchChunk {
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
	doc   any
	owner docOwner
	index int
}

// hybridHits is Julep's search_hybrid (see searchOwnedDocs).
func hybridHits(chunks []*searchChunk, terms []string, query []float64, confidence, alpha float64, candidates, k int) []*searchChunk {
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
		key := chunkKey{c.doc["id"], c.owner, c.index}
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
func applyMMR(hits []*searchChunk, query []float64, limit int, strength float64) []*searchChunk {
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
