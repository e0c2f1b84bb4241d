package llm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// OfflineModel is the model name the offline model reports.
const OfflineModel = "astra-offline"

// Offline returns a deterministic model for machines with no model endpoint.
// Its replies say plainly that they are offline and echo what was asked, so
// the whole product runs (and tests are repeatable) with no network.
func Offline() Model { return offline{} }

type offline struct{}

func (offline) Chat(ctx context.Context, req Request, onDelta func(string)) (*Response, error) {
	last := ""
	prompt := 0
	for _, m := range req.Messages {
		prompt += len(strings.Fields(m.Content))
		if m.Role == "user" || m.Role == "" {
			last = m.Content
		}
	}
	content := offlineReply(last)
	if rf := req.ResponseFormat; rf != nil && (rf.Type == "json_object" || rf.Type == "json_schema") {
		b, _ := json.Marshal(map[string]any{"offline": true, "reply": content})
		content = string(b)
	}
	if onDelta != nil {
		// Word by word, so streaming paths are exercised without a model.
		words := strings.SplitAfter(content, " ")
		for _, w := range words {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			onDelta(w)
		}
	} else if err := ctx.Err(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(content))
	completion := len(strings.Fields(content))
	return &Response{
		ID:           "offline-" + hex.EncodeToString(sum[:6]),
		Model:        OfflineModel,
		Content:      content,
		FinishReason: "stop",
		Usage:        Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion},
	}, nil
}

func offlineReply(prompt string) string {
	p := strings.Join(strings.Fields(prompt), " ")
	if r := []rune(p); len(r) > 160 {
		p = string(r[:160]) + "…"
	}
	if p == "" {
		return "(offline model) No model endpoint is configured, so this is a placeholder reply."
	}
	return "(offline model) No model endpoint is configured, so this is a placeholder reply to: " + p
}
