package llm

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// Embedder turns texts into vectors, one per text, all of one dimension.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float64, error)
	// Name is the model name docs record as their embedding_model.
	Name() string
}

// NewOpenAIEmbedder returns an Embedder for an OpenAI-compatible
// /embeddings endpoint.
func NewOpenAIEmbedder(baseURL, apiKey, model string, hc *http.Client) Embedder {
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	if apiKey == "" {
		apiKey = "none"
	}
	c := openai.NewClient(
		option.WithBaseURL(strings.TrimRight(baseURL, "/")+"/"),
		option.WithAPIKey(apiKey),
		option.WithHTTPClient(hc),
		// Embedding calls are idempotent and outside the engine's retry
		// policy (they run inside doc creates and searches), so the
		// client's own backoff retries transient failures.
		option.WithMaxRetries(2),
	)
	return &openAIEmbedder{client: c, model: model}
}

type openAIEmbedder struct {
	client openai.Client
	model  string
}

func (m *openAIEmbedder) Name() string { return m.model }

func (m *openAIEmbedder) Embed(ctx context.Context, texts []string) ([][]float64, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	if m.model == "" {
		return nil, errors.New("no embedding model: set ASTRA_EMBEDDING_MODEL")
	}
	res, err := m.client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: m.model,
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: texts},
	})
	if err != nil {
		return nil, modelError("embeddings", err)
	}
	if len(res.Data) != len(texts) {
		return nil, fmt.Errorf("embeddings: asked for %d vectors, got %d", len(texts), len(res.Data))
	}
	out := make([][]float64, len(texts))
	for _, d := range res.Data {
		if d.Index < 0 || int(d.Index) >= len(texts) {
			return nil, fmt.Errorf("embeddings: answer index %d out of range", d.Index)
		}
		out[d.Index] = d.Embedding
	}
	return out, nil
}

// OfflineDimensions is the size of the offline embedder's vectors: Julep's
// (its docs_embeddings column is vector(1024)).
const OfflineDimensions = 1024

// OfflineEmbedder is a deterministic embedder that needs no network:
// feature hashing of the text's lower-cased words and their character
// trigrams, L2-normalised. Texts sharing words are close in cosine
// distance, which is what tests and an offline install need; it is not a
// semantic model.
func OfflineEmbedder() Embedder { return offlineEmbedder{} }

type offlineEmbedder struct{}

func (offlineEmbedder) Name() string { return "astra-offline-hash-1024" }

func (offlineEmbedder) Embed(_ context.Context, texts []string) ([][]float64, error) {
	out := make([][]float64, len(texts))
	for i, t := range texts {
		out[i] = HashEmbedding(t)
	}
	return out, nil
}

// HashEmbedding is the offline embedder's vector of one text.
func HashEmbedding(text string) []float64 {
	v := make([]float64, OfflineDimensions)
	add := func(feature string, w float64) {
		h := fnv.New64a()
		_, _ = h.Write([]byte(feature))
		s := h.Sum64()
		sign := 1.0
		if s&(1<<63) != 0 {
			sign = -1
		}
		v[s%OfflineDimensions] += sign * w
	}
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, w := range words {
		add("w:"+w, 1)
		rs := []rune("^" + w + "$")
		for j := 0; j+3 <= len(rs); j++ {
			add("t:"+string(rs[j:j+3]), 0.5)
		}
	}
	var n float64
	for _, x := range v {
		n += x * x
	}
	if n > 0 {
		n = math.Sqrt(n)
		for i := range v {
			v[i] /= n
		}
	}
	return v
}
