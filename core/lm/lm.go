// Package lm defines how DSPEx talks to language models: one request and
// response type, typed errors, and the LM interface that providers
// implement, with streaming (Streamer) and embeddings (Embedder). The
// providers live in packages of their own: the OpenAI-compatible client
// (OpenAI, vLLM, Ollama, llama.cpp, LM Studio, OpenRouter) in
// core/lm/openai and the Anthropic Messages API in core/lm/anthropic.
// Endpoint is what every HTTP provider shares.
//
// Providers are wrapped in execution layers, each a small LM of its own:
// Metered → Cached → Collapse → Pool → RateLimit → Retry → Breaker →
// provider; NewStack builds the whole chain (see docs/architecture.md).
// What the layers learn about a call (waits, attempts, cost) goes into the
// call's CallStats, never onto the Response they pass on.
//
// Providers turn HTTP failures into *Error values whose Kind is one of the
// sentinel errors below, so callers branch with errors.Is and never parse
// messages.
package lm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role"` // "system", "user" or "assistant"
	Content string `json:"content"`
}

// Roles used in messages.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// ResponseFormat asks the provider for structured output.
type ResponseFormat struct {
	// Type is "json_object" (any JSON object) or "json_schema".
	Type string `json:"type"`
	// Name names the schema (json_schema only).
	Name string `json:"name,omitempty"`
	// Schema is the JSON schema the output must satisfy (json_schema
	// only), already encoded: it is sent with its keys in the order they
	// have here, since models tend to generate properties in schema order.
	Schema json.RawMessage `json:"schema,omitempty"`
	// Strict asks the provider to enforce the schema exactly.
	Strict bool `json:"strict,omitempty"`
}

// Params are sampling settings. A nil pointer means "not set": the provider's
// default applies. Params merge from LM defaults, to a predictor's config, to
// a single call, each later set value winning.
type Params struct {
	Temperature *float64       `json:"temperature,omitempty" yaml:"temperature,omitempty"`
	MaxTokens   *int           `json:"max_tokens,omitempty" yaml:"max_tokens,omitempty"`
	TopP        *float64       `json:"top_p,omitempty" yaml:"top_p,omitempty"`
	N           *int           `json:"n,omitempty" yaml:"n,omitempty"`
	Stop        []string       `json:"stop,omitempty" yaml:"stop,omitempty"`
	Seed        *int64         `json:"seed,omitempty" yaml:"seed,omitempty"`
	Extra       map[string]any `json:"extra,omitempty" yaml:"extra,omitempty"` // provider-specific body fields
}

// Merge returns p with every value set in o taking precedence.
func (p Params) Merge(o Params) Params {
	if o.Temperature != nil {
		p.Temperature = o.Temperature
	}
	if o.MaxTokens != nil {
		p.MaxTokens = o.MaxTokens
	}
	if o.TopP != nil {
		p.TopP = o.TopP
	}
	if o.N != nil {
		p.N = o.N
	}
	if o.Stop != nil {
		p.Stop = slices.Clone(o.Stop)
	}
	if o.Seed != nil {
		p.Seed = o.Seed
	}
	if o.Extra != nil {
		m := maps.Clone(p.Extra)
		if m == nil {
			m = map[string]any{}
		}
		maps.Copy(m, o.Extra)
		p.Extra = m
	}
	return p
}

// Float, Int and Int64 return pointers for Params literals.
func Float(v float64) *float64 { return &v }
func Int(v int) *int           { return &v }
func Int64(v int64) *int64     { return &v }

// Request is one chat completion request.
type Request struct {
	// Model overrides the LM's model name; empty uses the LM's own.
	Model    string
	Messages []Message
	Params
	// ResponseFormat asks for JSON output; nil for free text.
	ResponseFormat *ResponseFormat
	// RolloutID makes otherwise identical requests distinct (for caching
	// and sampling several answers to the same prompt).
	RolloutID string
}

// Choice is one completion.
type Choice struct {
	Text         string
	FinishReason string // "stop", "length", ...
}

// FinishLength is the finish reason of a completion cut off by the token
// limit (max_tokens), as OpenAI-compatible servers report it; the
// Anthropic client maps stop_reason "max_tokens" to it.
const FinishLength = "length"

// Truncated reports whether any choice stopped at the token limit.
func (r *Response) Truncated() bool {
	if r == nil {
		return false
	}
	for _, c := range r.Choices {
		if c.FinishReason == FinishLength {
			return true
		}
	}
	return false
}

// Usage counts tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// Add returns the sum of two usages.
func (u Usage) Add(o Usage) Usage {
	return Usage{u.PromptTokens + o.PromptTokens, u.CompletionTokens + o.CompletionTokens, u.TotalTokens + o.TotalTokens}
}

// Response is a provider's answer: what the provider (or the cache) produced.
// The execution layers never change a response they pass on; what they
// learn on the way (waits, attempts, cost) goes into the call's CallStats.
type Response struct {
	ID      string
	Model   string
	Choices []Choice
	// Usage counts the tokens this caller's call spent: zero for a cache
	// hit, and for a call that joined an identical one in flight.
	Usage Usage
	// CacheHit reports that the response came from a cache, not the
	// provider: the cache sets it on the copy it hands out.
	CacheHit bool
	// Latency is the wall time of the provider call, as the provider
	// measured it around its HTTP exchange; 0 for a cache hit.
	Latency time.Duration
}

// Clone returns a deep copy, so that a shared response (a cache hit, a
// collapsed call) is never mutated through another caller's copy.
func (r *Response) Clone() *Response {
	if r == nil {
		return nil
	}
	c := *r
	c.Choices = slices.Clone(r.Choices)
	return &c
}

// Text returns the first choice's text, or "" when there is none.
func (r *Response) Text() string {
	if r == nil || len(r.Choices) == 0 {
		return ""
	}
	return r.Choices[0].Text
}

// LM is a language model endpoint. Implementations are safe for concurrent
// use and honour ctx: a cancelled context ends the call promptly with an
// error matching ErrCanceled (or ErrTimeout for a passed deadline).
type LM interface {
	// Model names the model requests go to.
	Model() string
	// Complete sends one chat completion request.
	Complete(ctx context.Context, req *Request) (*Response, error)
}

// Kinds of LM errors. Every error a provider returns matches exactly one of
// them with errors.Is.
var (
	ErrAuth          = errors.New("lm: authentication failed")
	ErrNotFound      = errors.New("lm: model or endpoint not found")
	ErrRateLimited   = errors.New("lm: rate limited")
	ErrContextWindow = errors.New("lm: context window exceeded")
	ErrBadRequest    = errors.New("lm: bad request")
	ErrServer        = errors.New("lm: server error")
	ErrTimeout       = errors.New("lm: timeout")
	ErrCanceled      = errors.New("lm: canceled")
	ErrConnection    = errors.New("lm: connection failed")
	ErrBadResponse   = errors.New("lm: malformed response")
)

// Error is a failed LM call.
type Error struct {
	// Kind is one of the sentinel errors above.
	Kind error
	// Model and URL say where the call went (never the API key).
	Model string
	URL   string
	// StatusCode is the HTTP status, 0 when none was received.
	StatusCode int
	// RetryAfter is the server's requested wait, 0 when it gave none.
	RetryAfter time.Duration
	// Message is the provider's error message, if any.
	Message string
	// Err is the underlying error, if any.
	Err error
}

func (e *Error) Error() string {
	msg := e.Kind.Error()
	if e.Model != "" {
		msg += " (model " + e.Model + ")"
	}
	if e.StatusCode != 0 {
		msg += fmt.Sprintf(": HTTP %d", e.StatusCode)
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(", retry after %s", e.RetryAfter)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	} else if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Retryable reports whether a failed call may succeed if repeated: rate
// limits, server errors, timeouts and connection failures.
func Retryable(err error) bool {
	if errors.Is(err, ErrCanceled) {
		return false
	}
	return errors.Is(err, ErrRateLimited) || errors.Is(err, ErrServer) ||
		errors.Is(err, ErrTimeout) || errors.Is(err, ErrConnection)
}

// RetryAfter returns the wait a rate-limited or overloaded server asked for,
// or 0.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// ErrorKind names an error's class for traces and logs: "rate limited",
// "timeout", ... (the sentinel's text without the "lm: " prefix), or
// "error" for anything else.
func ErrorKind(err error) string {
	for _, k := range []error{ErrAuth, ErrNotFound, ErrRateLimited, ErrContextWindow, ErrBadRequest, ErrServer,
		ErrTimeout, ErrCanceled, ErrConnection, ErrBadResponse, ErrQueueFull, ErrBreakerOpen} {
		if errors.Is(err, k) {
			return strings.TrimPrefix(k.Error(), "lm: ")
		}
	}
	return "error"
}
