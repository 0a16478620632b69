// Package openai is the LM provider for OpenAI-compatible APIs: chat
// completions (Client, with streaming) and embeddings (Embedder), spoken
// over net/http, which OpenAI, vLLM, Ollama, llama.cpp, LM Studio,
// OpenRouter and the DSPEx simulator (core/lm/lmtest) all serve. It is the
// provider program files use by default. Like every HTTP provider it embeds
// lm.Endpoint, and it links nothing beyond the standard library and
// core/lm.
package openai

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dspex/dspex/core/lm"
)

// Defaults for Config.
const (
	// DefaultBaseURL is where requests go when Config.BaseURL is empty.
	DefaultBaseURL = "https://api.openai.com/v1"
	// DefaultAPIKeyEnv names the environment variable read for the API
	// key when Config.APIKeyEnv is empty.
	DefaultAPIKeyEnv = "OPENAI_API_KEY"
	// DefaultTimeout bounds one request when Config.Timeout is 0.
	DefaultTimeout = 10 * time.Minute
)

// defaultSchemaName names a json_schema response format whose Name is empty;
// OpenAI requires a name.
const defaultSchemaName = "response"

// maxResponseBody bounds an embeddings body read into memory.
const maxResponseBody = 64 << 20

// DefaultMaxResponseBytes bounds a chat completion body read into memory
// when Config.MaxResponseBytes is 0. A completion of this size is
// millions of tokens; reading and decoding one takes about three times its
// size in memory while it is parsed.
const DefaultMaxResponseBytes = 16 << 20

// bufPool recycles response buffers; parse copies what it keeps.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putBuf returns a buffer to the pool unless it grew unusually large.
func putBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		bufPool.Put(b)
	}
}

// Config configures an OpenAI-compatible chat-completions client. Only
// Model is required; every other zero value has the default documented on
// its field.
type Config struct {
	// Model is the model requests go to unless Request.Model overrides it.
	// Required.
	Model string
	// BaseURL is the API root that "/chat/completions" is appended to, for
	// example "http://127.0.0.1:8000/v1" for vLLM or
	// "http://localhost:11434/v1" for Ollama. Any OpenAI-compatible server
	// works (vLLM, Ollama, llama.cpp, LM Studio, OpenRouter). Default
	// DefaultBaseURL. It must be an absolute http or https URL.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <key>". It is never logged
	// and never appears in errors. When empty the key is read from the
	// environment variable named by APIKeyEnv.
	APIKey string
	// APIKeyEnv names the environment variable holding the API key when
	// APIKey is empty. Default DefaultAPIKeyEnv. It is read once, by
	// New. When neither yields a key, requests carry no Authorization
	// header at all, as local servers expect; to keep a key set in
	// OPENAI_API_KEY away from such a server, name a variable that is unset.
	APIKeyEnv string
	// Headers are added to every request. An "Authorization" entry replaces
	// the bearer key.
	Headers map[string]string
	// Timeout bounds each request, from sending to the last byte of the
	// response; a passed timeout is an ErrTimeout. 0 means
	// DefaultTimeout; a negative value means no bound other than the
	// caller's context.
	Timeout time.Duration
	// Params are the default sampling settings of every request; the
	// request's own Params are merged over them (the request wins).
	Params lm.Params
	// ResponseFormat chooses the response_format adapters send when they
	// want JSON: json_schema (OpenAI structured outputs), json_object, or
	// none. The zero value is ResponseFormatAuto, which decides from the
	// model name as DSPy does (see AutoResponseFormat): known OpenAI
	// models get json_schema (or json_object), any other model nothing.
	// Set json_schema for a local server that enforces schemas (vLLM,
	// Ollama, llama.cpp and LM Studio do).
	ResponseFormat lm.ResponseFormatMode
	// MaxResponseBytes bounds the body of one completion: a larger one
	// fails with ErrBadResponse naming the bound, before more than the
	// bound is read (at once when its Content-Length says so). 0 means
	// DefaultMaxResponseBytes (16 MiB).
	MaxResponseBytes int64
	// HTTPClient sends the requests. nil means a client of its own whose
	// transport is a clone of http.DefaultTransport keeping up to 1024 idle
	// connections per host, so that many concurrent calls reuse connections.
	HTTPClient *http.Client
}

// Client is an LM speaking the OpenAI chat-completions API over net/http.
// It is built once by New and is safe for concurrent use.
//
// It does not use the official SDK (github.com/openai/openai-go): measured
// against a loopback server, the SDK's per-request pipeline (option
// resolution, header copies, URL re-parsing, body re-compaction) cost about
// 25µs per call, putting a Predict call at 2.4× a raw HTTP round trip; this
// client makes the same request directly (see docs/architecture.md and
// docs/performance-notes.md).
//
// It makes exactly one HTTP request per Complete: retrying belongs to a
// separate layer that sees every provider. Every failure is an *Error whose
// Kind is one of the package's sentinels.
type Client struct {
	lm.Endpoint
	format lm.ResponseFormatMode
	// chatURL is base URL + "/chat/completions"; headers are sent with
	// every request (cloned per request, since a transport may keep them).
	chatURL string
	headers http.Header
	client  *http.Client
	maxBody int64 // bounds a completion body
}

var (
	_ lm.LM                = (*Client)(nil)
	_ lm.ResponseFormatter = (*Client)(nil)
)

// New returns a client for cfg. It fails when cfg.Model is empty,
// cfg.BaseURL is not an absolute http(s) URL or cfg.ResponseFormat is not a
// known mode. It reads the API key from the environment here, once, and
// never again.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("lm: new openai client: model is empty")
	}
	if cfg.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("lm: new openai client %q: max response bytes must not be negative, got %d", cfg.Model, cfg.MaxResponseBytes)
	}
	base := cmp.Or(cfg.BaseURL, DefaultBaseURL)
	key := lm.APIKey(cfg.APIKey, cmp.Or(cfg.APIKeyEnv, DefaultAPIKeyEnv))

	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: lm.NewTransport()}
	}

	headers := http.Header{}
	headers.Set("Content-Type", "application/json")
	headers.Set("Accept", "application/json")
	headers.Set("User-Agent", lm.UserAgent)
	if key != "" {
		headers.Set("Authorization", "Bearer "+key)
	}
	for name, value := range cfg.Headers {
		headers.Set(name, value)
	}

	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	params := cfg.Params
	params.Stop = slices.Clone(params.Stop)
	params.Extra = maps.Clone(params.Extra)
	ep, err := lm.NewEndpoint("openai client", cfg.Model, base, key, timeout, params)
	if err != nil {
		return nil, err
	}
	format, err := lm.ParseResponseFormatMode(string(cfg.ResponseFormat))
	if err != nil {
		// errors.Unwrap drops the "lm: " that ParseResponseFormatMode adds.
		return nil, fmt.Errorf("lm: new openai client %q: %w", cfg.Model, errors.Unwrap(err))
	}
	if format == lm.ResponseFormatAuto {
		format = lm.AutoResponseFormat(cfg.Model)
	}

	return &Client{
		Endpoint: ep,
		format:   format,
		chatURL:  lm.JoinURL(base, "/chat/completions"),
		headers:  headers,
		client:   hc,
		maxBody:  cmp.Or(cfg.MaxResponseBytes, DefaultMaxResponseBytes),
	}, nil
}

// ResponseFormat returns the response format mode adapters use with this
// endpoint (Config.ResponseFormat, auto resolved for the model).
func (o *Client) ResponseFormat() lm.ResponseFormatMode { return o.format }

// Complete sends req as one chat completion: messages, the model
// (req.Model, else the configured one), the configured Params merged under
// req.Params (temperature, max_tokens, top_p, n, stop, seed, and Extra
// fields written into the JSON body last, so they win over the rest), and
// req.ResponseFormat. req.RolloutID is not sent: it only tells cache entries
// apart.
//
// Choices come back in index order. A failure is an *Error: HTTP statuses
// map to ErrAuth (401, 403), ErrNotFound (404), ErrRateLimited (429),
// ErrContextWindow (400, 413 or 422 whose body says the prompt is too long),
// ErrTimeout (408), ErrBadRequest (other 4xx) and ErrServer (5xx), with
// RetryAfter taken from Retry-After or retry-after-ms on 429 and 5xx; a
// cancelled ctx gives ErrCanceled, a passed deadline or Config.Timeout
// ErrTimeout, a failed connection ErrConnection, and a 2xx body that is not a
// completion with at least one choice ErrBadResponse.
func (o *Client) Complete(ctx context.Context, req *lm.Request) (*lm.Response, error) {
	model, serr := o.Start(ctx, req)
	if serr != nil {
		return nil, serr
	}
	body, err := o.body(model, req, false)
	if err != nil {
		return nil, err
	}

	callCtx, cancel := o.CompleteContext(ctx)
	defer cancel()
	httpReq, err := http.NewRequestWithContext(callCtx, http.MethodPost, o.chatURL, bytes.NewReader(body))
	if err != nil {
		return nil, &lm.Error{Kind: lm.ErrBadRequest, Model: model, URL: o.URL(), Message: "build request: " + err.Error(), Err: err}
	}
	// A transport only reads a request's headers; only a client with a
	// cookie jar adds to them, so only then does the request need a copy.
	httpReq.Header = o.headers
	if o.client.Jar != nil {
		httpReq.Header = o.headers.Clone()
	}
	start := time.Now()
	httpRes, err := o.client.Do(httpReq)
	if err != nil {
		return nil, o.callError(ctx, callCtx, model, nil, err)
	}
	defer httpRes.Body.Close()
	if httpRes.StatusCode >= 400 {
		return nil, o.statusError(model, httpRes)
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer putBuf(buf)
	raw, tooLarge, err := readBody(httpRes, o.maxBody, buf)
	latency := time.Since(start)
	if tooLarge {
		return nil, o.tooLarge(model, httpRes.StatusCode)
	}
	if err != nil {
		return nil, o.callError(ctx, callCtx, model, httpRes, err)
	}
	res, err := o.parse(model, raw, httpRes)
	if err != nil {
		return nil, err
	}
	res.Latency = latency
	return res, nil
}

// chatRequest is the JSON body of a chat completion request. Fields that
// Params.Extra names are cleared before encoding, so that Extra wins.
type chatRequest struct {
	Model          string              `json:"model,omitzero"`
	Messages       []lm.Message        `json:"messages,omitzero"`
	Temperature    *float64            `json:"temperature,omitempty"`
	MaxTokens      *int                `json:"max_tokens,omitempty"`
	TopP           *float64            `json:"top_p,omitempty"`
	N              *int                `json:"n,omitempty"`
	Stop           []string            `json:"stop,omitempty"`
	Seed           *int64              `json:"seed,omitempty"`
	ResponseFormat *chatResponseFormat `json:"response_format,omitempty"`
	Stream         bool                `json:"stream,omitzero"`
	StreamOptions  *chatStreamOptions  `json:"stream_options,omitempty"`
}

type chatStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatResponseFormat struct {
	Type       string          `json:"type"`
	JSONSchema *chatJSONSchema `json:"json_schema,omitempty"`
}

type chatJSONSchema struct {
	Name   string          `json:"name"`
	Strict bool            `json:"strict,omitempty"`
	Schema json.RawMessage `json:"schema,omitempty"`
}

// body encodes the JSON request body; stream asks for server-sent events
// with a final usage chunk (Params.Extra may replace stream_options, never
// stream).
func (o *Client) body(model string, req *lm.Request, stream bool) ([]byte, error) {
	p := o.Params().Merge(req.Params)
	if stream {
		if _, ok := p.Extra["stream"]; ok {
			p.Extra = maps.Clone(p.Extra) // may be the configured defaults' map
			delete(p.Extra, "stream")
		}
	}
	cr := chatRequest{
		Model:       model,
		Messages:    req.Messages,
		Temperature: p.Temperature,
		MaxTokens:   p.MaxTokens,
		TopP:        p.TopP,
		N:           p.N,
		Stop:        p.Stop,
		Seed:        p.Seed,
	}
	if stream {
		cr.Stream = true
		cr.StreamOptions = &chatStreamOptions{IncludeUsage: true}
	}
	if cr.Messages == nil {
		cr.Messages = []lm.Message{}
	}
	for i, m := range req.Messages {
		switch m.Role {
		case lm.RoleSystem, lm.RoleUser, lm.RoleAssistant, "developer":
		default:
			return nil, &lm.Error{Kind: lm.ErrBadRequest, Model: model, URL: o.URL(),
				Message: fmt.Sprintf("message %d: unknown role %q", i, m.Role)}
		}
	}
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "":
		case "text", "json_object":
			cr.ResponseFormat = &chatResponseFormat{Type: rf.Type}
		case "json_schema":
			js := &chatJSONSchema{Name: rf.Name, Strict: rf.Strict, Schema: rf.Schema}
			if js.Name == "" {
				js.Name = defaultSchemaName
			}
			cr.ResponseFormat = &chatResponseFormat{Type: rf.Type, JSONSchema: js}
		default:
			return nil, &lm.Error{Kind: lm.ErrBadRequest, Model: model, URL: o.URL(),
				Message: fmt.Sprintf("unknown response format type %q", rf.Type)}
		}
	}
	for k := range p.Extra {
		switch k {
		case "model":
			cr.Model = ""
		case "messages":
			cr.Messages = nil
		case "temperature":
			cr.Temperature = nil
		case "max_tokens":
			cr.MaxTokens = nil
		case "top_p":
			cr.TopP = nil
		case "n":
			cr.N = nil
		case "stop":
			cr.Stop = nil
		case "seed":
			cr.Seed = nil
		case "response_format":
			cr.ResponseFormat = nil
		case "stream_options":
			cr.StreamOptions = nil
		}
	}
	// Messages are most of the body; they are written by hand, which costs
	// a third of what encoding/json's reflection and HTML escaping cost.
	msgs := cr.Messages
	cr.Messages = nil
	b, err := encodeHead(&cr, messagesSize(msgs))
	if err == nil && msgs != nil {
		b = appendMessages(b, msgs)
	}
	if err == nil && len(p.Extra) > 0 {
		b, err = appendFields(b, p.Extra)
	}
	if err != nil {
		return nil, &lm.Error{Kind: lm.ErrBadRequest, Model: model, URL: o.URL(), Message: "encode request: " + err.Error(), Err: err}
	}
	return b, nil
}

// encodeHead encodes cr, whose Messages are nil, as json.Marshal does:
// by hand in the usual case (no response format, plain model and stop
// strings, finite floats), which saves encoding/json's reflection on
// every call, else by json.Marshal itself.
// room is how many more bytes the caller will append (the messages), so
// that the body needs one buffer.
func encodeHead(cr *chatRequest, room int) ([]byte, error) {
	if b, ok := appendHead(make([]byte, 0, 128+room), cr); ok {
		return b, nil
	}
	return json.Marshal(cr)
}

// appendHead is encodeHead's hand-written encoder; false leaves cr to
// json.Marshal.
func appendHead(b []byte, cr *chatRequest) ([]byte, bool) {
	if cr.ResponseFormat != nil || !plainString(cr.Model) {
		return nil, false
	}
	b = append(b, '{')
	field := func(name string) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, name...)
	}
	if cr.Model != "" {
		field(`"model":"`)
		b = append(b, cr.Model...)
		b = append(b, '"')
	}
	ok := true
	if cr.Temperature != nil {
		field(`"temperature":`)
		b, ok = appendFloat(b, *cr.Temperature)
	}
	if cr.MaxTokens != nil {
		field(`"max_tokens":`)
		b = strconv.AppendInt(b, int64(*cr.MaxTokens), 10)
	}
	if cr.TopP != nil && ok {
		field(`"top_p":`)
		b, ok = appendFloat(b, *cr.TopP)
	}
	if cr.N != nil {
		field(`"n":`)
		b = strconv.AppendInt(b, int64(*cr.N), 10)
	}
	if len(cr.Stop) > 0 {
		field(`"stop":[`)
		for i, s := range cr.Stop {
			if !plainString(s) {
				return nil, false
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, s...)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	if cr.Seed != nil {
		field(`"seed":`)
		b = strconv.AppendInt(b, *cr.Seed, 10)
	}
	if cr.Stream {
		field(`"stream":true`)
	}
	if cr.StreamOptions != nil {
		field(`"stream_options":{"include_usage":`)
		b = strconv.AppendBool(b, cr.StreamOptions.IncludeUsage)
		b = append(b, '}')
	}
	return append(b, '}'), ok
}

// plainString reports whether encoding/json writes s between quotes as it
// is: printable ASCII other than '"', '\\', '<', '>' and '&'.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c >= utf8.RuneSelf, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// appendFloat writes f as encoding/json does; a NaN or an infinity, which
// it refuses, reports false.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// "1e-07" → "1e-7", as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// messagesSize estimates the bytes of "messages":[...] for msgs.
func messagesSize(msgs []lm.Message) int {
	size := 16
	for _, m := range msgs {
		// Escapes lengthen a prompt (each newline becomes "\\n"): an
		// eighth more keeps the buffer from growing on typical prompts.
		size += len(m.Role) + len(m.Content) + len(m.Content)/8 + 32
	}
	return size
}

// appendMessages adds "messages":[...] to the JSON object obj, in obj's
// own buffer when it has room.
func appendMessages(obj []byte, msgs []lm.Message) []byte {
	out := obj[:len(obj)-1] // drop '}'
	if size := messagesSize(msgs); cap(obj)-len(obj) < size {
		out = make([]byte, 0, len(obj)+size)
		out = append(out, obj[:len(obj)-1]...)
	}
	if len(obj) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"messages":[`...)
	for i, m := range msgs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"role":`...)
		out = lm.AppendJSONString(out, m.Role, false)
		out = append(out, `,"content":`...)
		out = lm.AppendJSONString(out, m.Content, false)
		out = append(out, '}')
	}
	return append(out, "]}"...)
}

// appendFields adds fields, in key order, to the JSON object obj.
func appendFields(obj []byte, fields map[string]any) ([]byte, error) {
	obj = obj[:len(obj)-1] // drop '}'
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		key, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		val, err := json.Marshal(fields[k])
		if err != nil {
			return nil, fmt.Errorf("extra field %q: %w", k, err)
		}
		if len(obj) > 1 {
			obj = append(obj, ',')
		}
		obj = append(obj, key...)
		obj = append(obj, ':')
		obj = append(obj, val...)
	}
	return append(obj, '}'), nil
}

// chatResponse is the part of a chat completion that DSPEx reads.
type chatResponse struct {
	ID      string          `json:"id"`
	Model   string          `json:"model"`
	Choices []chatChoice    `json:"choices"`
	Usage   lm.Usage        `json:"usage"`
	Error   json.RawMessage `json:"error"`
}

type chatChoice struct {
	Index   int `json:"index"`
	Message struct {
		Content *string `json:"content"`
	} `json:"message"`
	FinishReason string `json:"finish_reason"`
}

// parse turns a 2xx body into a Response.
func (o *Client) parse(model string, raw []byte, httpRes *http.Response) (*lm.Response, error) {
	status := 0
	if httpRes != nil {
		status = httpRes.StatusCode
	}
	var cr chatResponse
	if err := decodeChat(raw, &cr); err != nil {
		return nil, &lm.Error{Kind: lm.ErrBadResponse, Model: model, URL: o.URL(), StatusCode: status,
			Message: "decode chat completion: " + err.Error() + ": " + o.clip(raw), Err: err}
	}
	if len(cr.Choices) == 0 {
		msg := "no choices in chat completion"
		// Some gateways (OpenRouter among them) answer 200 with an error
		// object instead of a completion.
		if len(cr.Error) > 0 && string(cr.Error) != "null" {
			if text, _ := lm.ErrorText(cr.Error); text != "" {
				msg += ": " + o.Scrub(text)
			}
		}
		return nil, &lm.Error{Kind: lm.ErrBadResponse, Model: model, URL: o.URL(), StatusCode: status, Message: msg}
	}
	slices.SortStableFunc(cr.Choices, func(a, b chatChoice) int { return cmp.Compare(a.Index, b.Index) })
	res := &lm.Response{ID: cr.ID, Model: cr.Model, Usage: cr.Usage, Choices: make([]lm.Choice, len(cr.Choices))}
	if res.Model == "" {
		res.Model = model
	}
	for i, c := range cr.Choices {
		if c.Message.Content != nil {
			res.Choices[i].Text = *c.Message.Content
		}
		res.Choices[i].FinishReason = c.FinishReason
	}
	return res, nil
}

// pooledBody is the largest body read into a pooled buffer; a larger one
// gets a slice of its own of exactly its Content-Length, so that neither a
// doubling buffer nor the pool holds far more than the body.
const pooledBody = 1 << 20

// readBody reads httpRes's body, at most limit bytes: tooLarge reports a
// body over limit, found from its Content-Length before reading, or after
// reading limit+1 bytes. Small bodies and bodies of unknown length are read
// into buf; the returned bytes are valid until buf is reused.
func readBody(httpRes *http.Response, limit int64, buf *bytes.Buffer) (raw []byte, tooLarge bool, err error) {
	n := httpRes.ContentLength
	if n > limit {
		return nil, true, nil
	}
	if n > pooledBody {
		raw = make([]byte, n)
		if _, err := io.ReadFull(httpRes.Body, raw); err != nil {
			return nil, false, err
		}
		// net/http ends the body at its Content-Length.
		return raw, false, nil
	}
	if n > 0 {
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(httpRes.Body, limit+1)); err != nil {
		return nil, false, err
	}
	if int64(buf.Len()) > limit {
		return nil, true, nil
	}
	return buf.Bytes(), false, nil
}

// tooLarge is the error for a completion body over the configured bound.
func (o *Client) tooLarge(model string, status int) *lm.Error {
	return &lm.Error{Kind: lm.ErrBadResponse, Model: model, URL: o.URL(), StatusCode: status,
		Message: fmt.Sprintf("response body is larger than the %d-byte limit (lm.max_response_bytes)", o.maxBody)}
}

// callError classifies a failed HTTP call. ctx is the caller's context,
// callCtx the one bounded by the configured timeout, httpRes the response
// if one arrived (with a status under 400: reading or decoding its body
// failed).
func (o *Client) callError(ctx, callCtx context.Context, model string, httpRes *http.Response, err error) *lm.Error {
	if e := o.EndedError(ctx, callCtx, model); e != nil {
		return e
	}
	if httpRes == nil {
		return o.SendError(model, err)
	}
	e := &lm.Error{Kind: lm.ErrConnection, Model: model, URL: o.URL(), StatusCode: httpRes.StatusCode, Err: err}
	if !lm.ConnectionFailure(err) {
		e.Kind = lm.ErrBadResponse
	}
	return e
}

// statusError classifies an HTTP error response.
func (o *Client) statusError(model string, httpRes *http.Response) *lm.Error {
	var body []byte
	if httpRes.Body != nil {
		body, _ = io.ReadAll(io.LimitReader(httpRes.Body, lm.MaxErrorBody))
	}
	return o.HTTPError(model, httpRes.StatusCode, httpRes.Header, o.errorMessage(body), lm.MentionsContextWindow(body))
}

// errorMessage extracts the provider's message from an error body: OpenAI's
// {"error":{"message":...}}, {"error":"..."} (Ollama, llama.cpp),
// {"message":...} or {"detail":...} (FastAPI servers), else the text itself.
func (o *Client) errorMessage(body []byte) string {
	var eb struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &eb) == nil {
		if text, ok := lm.ErrorText(eb.Error); ok {
			return o.Scrub(text)
		}
		if eb.Message != "" {
			return o.Scrub(eb.Message)
		}
		if text, ok := lm.ErrorText(eb.Detail); ok {
			return o.Scrub(text)
		}
	}
	return o.clip(body)
}

// clip renders a body as a bounded, scrubbed message.
func (o *Client) clip(body []byte) string {
	return o.Scrub(string(bytes.TrimSpace(body)))
}
