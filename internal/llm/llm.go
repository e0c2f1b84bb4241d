// Package llm is the chat-model port of the embedded engine: any
// OpenAI-compatible chat endpoint through the official openai-go client, or a
// deterministic offline model when none is configured.
package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/astra-app/astra/internal/retry"
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ResponseFormat asks for text, any JSON object, or JSON matching Schema.
type ResponseFormat struct {
	Type   string         `json:"type"` // text | json_object | json_schema
	Name   string         `json:"name,omitempty"`
	Schema map[string]any `json:"schema,omitempty"`
	Strict bool           `json:"strict,omitempty"`
}

// Request is one chat completion request.
type Request struct {
	Model          string
	Messages       []Message
	Temperature    *float64
	MaxTokens      int
	ResponseFormat *ResponseFormat
}

// Usage counts tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// Response is the model's answer.
type Response struct {
	ID           string `json:"id"`
	Model        string `json:"model"`
	Content      string `json:"content"`
	FinishReason string `json:"finish_reason"`
	Usage        Usage  `json:"usage"`
}

// Model answers chat requests. When onDelta is not nil the answer is
// streamed and onDelta receives each piece of content as it arrives; the
// returned Response always holds the whole content.
type Model interface {
	Chat(ctx context.Context, req Request, onDelta func(string)) (*Response, error)
}

// NewOpenAI returns a Model for an OpenAI-compatible endpoint (baseURL such as
// "https://api.openai.com/v1"). defaultModel is used when a request names none.
func NewOpenAI(baseURL, apiKey, defaultModel string, hc *http.Client) Model {
	if hc == nil {
		hc = &http.Client{Timeout: 120 * time.Second}
	}
	if apiKey == "" {
		apiKey = "none" // local endpoints often need no key, but the client insists on one
	}
	c := openai.NewClient(
		option.WithBaseURL(strings.TrimRight(baseURL, "/")+"/"),
		option.WithAPIKey(apiKey),
		option.WithHTTPClient(hc),
		// No retries here: the engine retries model calls with its own
		// policy (internal/retry), which knows whether a stream has already
		// reached the person. Both retrying would multiply the attempts
		// (3 × 5 requests) and overrun the engine's time budget.
		option.WithMaxRetries(0),
	)
	return &openAIModel{client: c, defaultModel: defaultModel}
}

type openAIModel struct {
	client       openai.Client
	defaultModel string
}

func (m *openAIModel) params(req Request) (openai.ChatCompletionNewParams, error) {
	model := req.Model
	if model == "" {
		model = m.defaultModel
	}
	if model == "" {
		return openai.ChatCompletionNewParams{}, errors.New("no model: set the step's or agent's model, or ASTRA_LLM_MODEL")
	}
	p := openai.ChatCompletionNewParams{Model: shared.ChatModel(model)}
	for _, msg := range req.Messages {
		switch msg.Role {
		case "system":
			p.Messages = append(p.Messages, openai.SystemMessage(msg.Content))
		case "assistant":
			p.Messages = append(p.Messages, openai.AssistantMessage(msg.Content))
		case "user", "":
			p.Messages = append(p.Messages, openai.UserMessage(msg.Content))
		default:
			return p, fmt.Errorf("message role %q is not system, user or assistant", msg.Role)
		}
	}
	if req.Temperature != nil {
		p.Temperature = openai.Float(*req.Temperature)
	}
	if req.MaxTokens > 0 {
		p.MaxTokens = openai.Int(int64(req.MaxTokens))
	}
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
			p.ResponseFormat.OfText = &shared.ResponseFormatTextParam{}
		case "json_object":
			p.ResponseFormat.OfJSONObject = &shared.ResponseFormatJSONObjectParam{}
		case "json_schema":
			name := rf.Name
			if name == "" {
				name = "response"
			}
			js := shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: name, Schema: rf.Schema}
			if rf.Strict {
				js.Strict = openai.Bool(true)
			}
			p.ResponseFormat.OfJSONSchema = &shared.ResponseFormatJSONSchemaParam{JSONSchema: js}
		default:
			return p, fmt.Errorf("response_format type %q is not text, json_object or json_schema", rf.Type)
		}
	}
	return p, nil
}

func (m *openAIModel) Chat(ctx context.Context, req Request, onDelta func(string)) (*Response, error) {
	p, err := m.params(req)
	if err != nil {
		return nil, err
	}
	if onDelta == nil {
		c, err := m.client.Chat.Completions.New(ctx, p)
		if err != nil {
			return nil, modelError("chat completion", err)
		}
		if len(c.Choices) == 0 {
			return nil, errors.New("chat completion: the model returned no choices")
		}
		return &Response{
			ID: c.ID, Model: c.Model, Content: c.Choices[0].Message.Content,
			FinishReason: string(c.Choices[0].FinishReason),
			Usage:        Usage{int(c.Usage.PromptTokens), int(c.Usage.CompletionTokens), int(c.Usage.TotalTokens)},
		}, nil
	}
	stream := m.client.Chat.Completions.NewStreaming(ctx, p)
	defer stream.Close()
	var (
		out  Response
		text strings.Builder
	)
	for stream.Next() {
		ch := stream.Current()
		if out.ID == "" {
			out.ID, out.Model = ch.ID, ch.Model
		}
		if ch.Usage.TotalTokens > 0 {
			out.Usage = Usage{int(ch.Usage.PromptTokens), int(ch.Usage.CompletionTokens), int(ch.Usage.TotalTokens)}
		}
		for _, c := range ch.Choices {
			if c.Index != 0 {
				continue
			}
			if d := c.Delta.Content; d != "" {
				text.WriteString(d)
				onDelta(d)
			}
			if c.FinishReason != "" {
				out.FinishReason = string(c.FinishReason)
			}
		}
	}
	if err := stream.Err(); err != nil {
		return nil, modelError("chat completion stream", err)
	}
	out.Content = text.String()
	return &out, nil
}

// modelError keeps the endpoint's own explanation (openai-go's Error() holds
// only the status line), so a task author sees why the model refused, and
// carries the status and headers so a caller can judge whether to retry.
func modelError(what string, err error) error {
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("%s: %w", what, err)
	}
	se := &retry.StatusError{Code: apiErr.StatusCode, Err: fmt.Errorf("%s: %w", what, err)}
	if apiErr.Response != nil {
		se.Header = apiErr.Response.Header
	}
	if apiErr.Message != "" {
		se.Err = fmt.Errorf("%s: %d %s: %w", what, apiErr.StatusCode, apiErr.Message, err)
	}
	return se
}
