// Package anthropic is the LM provider for Anthropic's Messages API, over
// the official Go SDK. It lives apart from core/lm so that programs that do
// not use it, and every package that only needs LM types, do not link the
// SDK and what it pulls in (OpenTelemetry among it).
package anthropic

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/dspex/dspex/core/lm"
)

// Defaults for Config.
const (
	// DefaultBaseURL is where requests go when Config.BaseURL
	// is empty.
	DefaultBaseURL = "https://api.anthropic.com"
	// DefaultAPIKeyEnv names the environment variable read for the
	// API key when Config.APIKeyEnv is empty.
	DefaultAPIKeyEnv = "ANTHROPIC_API_KEY"
	// DefaultMaxTokens is the max_tokens of a request that sets
	// none, since the Messages API requires one.
	DefaultMaxTokens = 4096
	// DefaultTimeout bounds one request when Config.Timeout
	// is 0.
	DefaultTimeout = 10 * time.Minute
)

// anthropicSamplingCutoff is the first Messages API version that rejects
// temperature, top_p and top_k with a 400, even at their default values.
// The SDK sends it, or a later one, unless Headers name an older version.
const anthropicSamplingCutoff = "2026-10-21"

// unboundedAttempt is the SDK's per-attempt timeout when
// Config.Timeout is negative: the SDK otherwise picks its own and
// refuses non-streaming requests with a large max_tokens.
const unboundedAttempt = 100 * 365 * 24 * time.Hour

// Config configures a client of Anthropic's Messages API. Only
// Model is required; every other zero value has the default documented on
// its field.
type Config struct {
	// Model is the model requests go to unless Request.Model overrides it,
	// for example "claude-sonnet-4-5". Required.
	Model string
	// BaseURL is the API root that "/v1/messages" is appended to. Default
	// DefaultBaseURL. It must be an absolute http or https URL.
	BaseURL string
	// APIKey is sent in the "x-api-key" header. It is never logged and
	// never appears in errors. When empty the key is read from the
	// environment variable named by APIKeyEnv.
	APIKey string
	// APIKeyEnv names the environment variable holding the API key when
	// APIKey is empty. Default DefaultAPIKeyEnv. It is read once,
	// by New; the SDK itself reads no environment variable. When
	// neither yields a key, requests carry no key at all (for a gateway
	// that adds its own, or one authenticated through Headers).
	APIKeyEnv string
	// Headers are added to every request and replace those of the same
	// name: "anthropic-version" (the SDK sends the API version it was
	// built for), "anthropic-beta", "x-api-key", or a gateway's own.
	Headers map[string]string
	// Timeout bounds each request, from sending to the last byte of the
	// response (of the whole stream, for Stream); a passed timeout is an
	// ErrTimeout. 0 means DefaultTimeout; a negative value means
	// no bound other than the caller's context.
	Timeout time.Duration
	// Params are the default sampling settings of every request; the
	// request's own Params are merged over them (the request wins).
	Params lm.Params
	// MaxTokens is max_tokens for requests whose Params set none: the
	// Messages API requires it. Default DefaultMaxTokens.
	MaxTokens int
	// HTTPClient sends the requests. nil means a client of its own whose
	// transport keeps up to 1024 idle connections per host.
	HTTPClient *http.Client
}

// Client is an LM speaking Anthropic's Messages API through the official
// SDK (github.com/anthropics/anthropic-sdk-go/v2). It is built once by
// New and is safe for concurrent use.
//
// It makes exactly one HTTP request per call: the SDK's retries are off,
// since retrying belongs to a separate layer that sees every provider.
// Every failure is an *Error whose Kind is one of the package's sentinels,
// as for OpenAI.
type Client struct {
	lm.Endpoint
	maxTokens int
	// sampling says whether temperature and top_p are sent: only when
	// Headers pin an API version that still accepts them.
	sampling bool
	svc      anthropic.MessageService
}

var (
	_ lm.LM       = (*Client)(nil)
	_ lm.Streamer = (*Client)(nil)
)

// New returns a client for cfg. It fails when cfg.Model is empty,
// cfg.BaseURL is not an absolute http(s) URL or cfg.MaxTokens is negative.
// It reads the API key from the environment here, once, and never again;
// nothing else is taken from the environment (the SDK's own defaults —
// ANTHROPIC_BASE_URL, ANTHROPIC_AUTH_TOKEN, profiles, custom headers,
// OpenTelemetry settings — are bypassed).
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, errors.New("lm: new anthropic client: model is empty")
	}
	base := cmp.Or(cfg.BaseURL, DefaultBaseURL)
	if cfg.MaxTokens < 0 {
		return nil, fmt.Errorf("lm: new anthropic client %q: max tokens %d is negative", cfg.Model, cfg.MaxTokens)
	}
	key := lm.APIKey(cfg.APIKey, cmp.Or(cfg.APIKeyEnv, DefaultAPIKeyEnv))

	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: lm.NewTransport()}
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	maxTokens := cfg.MaxTokens
	if maxTokens == 0 {
		maxTokens = DefaultMaxTokens
	}
	params := cfg.Params
	params.Stop = slices.Clone(params.Stop)
	params.Extra = maps.Clone(params.Extra)

	// The message service is built directly: anthropic.NewClient would add
	// defaults read from the environment and the user's profile files.
	opts := []option.RequestOption{
		option.WithBaseURL(base),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(0),
		option.WithoutOpenTelemetry(),
		option.WithOpenTelemetryPropagation(false),
		option.WithOpenTelemetryTracesContentMode(option.OpenTelemetryContentModeMetadataOnly),
		option.WithHeader("User-Agent", lm.UserAgent),
		option.WithMiddleware(dropSDKTelemetry),
	}
	if u, err := url.Parse(base); err == nil && u.RawQuery != "" {
		// The SDK resolves "v1/messages" against the base URL, which
		// drops the base's query (a gateway's key, say).
		opts = append(opts, option.WithMiddleware(withQuery(u.Query())))
	}
	if key != "" {
		// x-api-key rather than the SDK's bearer form: every API version
		// and the gateways in front of it accept it.
		opts = append(opts, option.WithHeader("x-api-key", key))
	}
	version := ""
	for _, name := range slices.Sorted(maps.Keys(cfg.Headers)) {
		opts = append(opts, option.WithHeader(name, cfg.Headers[name]))
		if strings.EqualFold(name, "anthropic-version") {
			version = strings.TrimSpace(cfg.Headers[name])
		}
	}

	ep, err := lm.NewEndpoint("anthropic client", cfg.Model, base, key, timeout, params)
	if err != nil {
		return nil, err
	}
	return &Client{
		Endpoint:  ep,
		maxTokens: maxTokens,
		sampling:  version != "" && version < anthropicSamplingCutoff,
		svc:       anthropic.NewMessageService(opts...),
	}, nil
}

// withQuery adds the base URL's query parameters to every request that
// does not set them itself.
func withQuery(q url.Values) option.Middleware {
	return func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		rq := req.URL.Query()
		for k, vs := range q {
			if !rq.Has(k) {
				rq[k] = vs
			}
		}
		req.URL.RawQuery = rq.Encode()
		return next(req)
	}
}

// dropSDKTelemetry removes the SDK's X-Stainless-* headers (OS, runtime,
// retry count), which DSPEx does not send to any provider.
func dropSDKTelemetry(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	for name := range req.Header {
		if strings.HasPrefix(name, "X-Stainless-") {
			delete(req.Header, name)
		}
	}
	return next(req)
}

// Complete sends req as one Messages API request and returns its text.
//
// The request: system messages become the "system" parameter (several are
// joined by a blank line), user and assistant messages the "messages" (a
// run of messages of one role becomes one message of several text blocks;
// empty messages are left out); the model is req.Model, else the
// configured one; the configured Params are merged under req.Params:
// max_tokens (else Config.MaxTokens), stop → stop_sequences, and
// Extra fields written into the body last, so that they win ("stream"
// excepted). temperature and top_p are sent only when
// Config.Headers pins an "anthropic-version" older than
// 2026-10-21 (such as "2023-06-01"): later versions, which the SDK speaks,
// reject them with a 400 even at their defaults; to send them anyway, put
// them in Params.Extra. Seed, req.ResponseFormat and req.RolloutID are not
// sent: the API has no seed and no response_format (the adapters ask for
// JSON in the prompt). n other than 1 is refused with ErrBadRequest.
//
// The response has one Choice: the text of every text block, concatenated.
// FinishReason maps stop_reason: "end_turn" and "stop_sequence" to "stop",
// "max_tokens" and "model_context_window_exceeded" to "length", "refusal"
// to "content_filter", "tool_use" to "tool_calls", others unchanged.
// Usage.PromptTokens counts input tokens including those written to and
// read from the prompt cache, as OpenAI's prompt_tokens does.
//
// A failure is an *Error: HTTP statuses map to ErrAuth (401, 403),
// ErrNotFound (404), ErrRateLimited (429), ErrContextWindow (400, 413 or
// 422 whose body says the prompt is too long), ErrTimeout (408),
// ErrBadRequest (other 4xx) and ErrServer (5xx, 529 overloaded included), with
// RetryAfter taken from Retry-After or retry-after-ms on 429 and 5xx; a
// cancelled ctx gives ErrCanceled, a passed deadline or
// Config.Timeout ErrTimeout, a failed connection ErrConnection,
// and a 2xx body that is not a message ErrBadResponse.
func (a *Client) Complete(ctx context.Context, req *lm.Request) (*lm.Response, error) {
	model, perr := a.Start(ctx, req)
	if perr != nil {
		return nil, perr
	}
	params, perr := a.newParams(model, req)
	if perr != nil {
		return nil, perr
	}
	callCtx, cancel := a.CallContext(ctx)
	defer cancel()
	attempt := a.Timeout()
	if attempt <= 0 {
		attempt = unboundedAttempt
	}
	var httpRes *http.Response
	var body bodyWatch
	start := time.Now()
	msg, err := a.svc.New(callCtx, params, option.WithRequestTimeout(attempt), option.WithResponseInto(&httpRes),
		option.WithMiddleware(body.middleware))
	latency := time.Since(start)
	if err != nil {
		return nil, a.callError(ctx, callCtx, model, httpRes, body.err, err)
	}
	res, perr := a.response(model, msg, httpRes)
	if perr != nil {
		return nil, perr
	}
	res.Latency = latency
	return res, nil
}

// Stream sends req as a streaming Messages API request (the body Complete
// sends, with "stream": true) and yields the text as the server sends it,
// one Delta per text delta (Index 0: the API has one choice). The final
// delta carries FinishReason, mapped as Complete maps stop_reason, and
// Usage.
//
// Each iteration sends a new request. A failure is yielded once, as the
// error of the last pair, and is an *Error: before the stream starts, the
// same as Complete's; during it, an error event maps by its type
// (overloaded_error and api_error to ErrServer, rate_limit_error to
// ErrRateLimited, invalid_request_error to ErrBadRequest or
// ErrContextWindow, ...), a broken connection or a stream that ends before
// message_stop and without a stop reason is ErrConnection, an event that
// is not valid JSON ErrBadResponse, a cancelled ctx ErrCanceled and a
// passed deadline or Config.Timeout (which bounds the whole
// stream) ErrTimeout. Stopping the iteration early cancels the request and
// closes the connection; no goroutine is left behind.
func (a *Client) Stream(ctx context.Context, req *lm.Request) iter.Seq2[lm.Delta, error] {
	return func(yield func(lm.Delta, error) bool) {
		model, perr := a.Start(ctx, req)
		if perr != nil {
			yield(lm.Delta{}, perr)
			return
		}
		params, perr := a.newParams(model, req)
		if perr != nil {
			yield(lm.Delta{}, perr)
			return
		}
		callCtx, cancel := a.CallContext(ctx)
		defer cancel()
		var httpRes *http.Response
		var body bodyWatch
		stream := a.svc.NewStreaming(callCtx, params, option.WithResponseInto(&httpRes), option.WithMiddleware(body.middleware))
		defer stream.Close()

		var (
			usage anthropicUsage
			stop  string
		)
		final := func() {
			u := usage.lm()
			yield(lm.Delta{FinishReason: finishReason(stop), Usage: &u}, nil)
		}
		for stream.Next() {
			if callCtx.Err() != nil {
				yield(lm.Delta{}, a.callError(ctx, callCtx, model, httpRes, callCtx.Err(), callCtx.Err()))
				return
			}
			ev := stream.Current()
			var text string
			switch ev.Type {
			case "message_start":
				usage.start(ev.Message.Usage)
			case "content_block_start":
				if ev.ContentBlock.Type == "text" {
					text = ev.ContentBlock.Text
				}
			case "content_block_delta":
				if ev.Delta.Type == "text_delta" {
					text = ev.Delta.Text
				}
			case "message_delta":
				if ev.Delta.StopReason != "" {
					stop = string(ev.Delta.StopReason)
				}
				usage.delta(ev.Usage)
			case "message_stop":
				final()
				return
			}
			if text != "" && !yield(lm.Delta{Text: text}, nil) {
				return
			}
		}
		if err := stream.Err(); err != nil {
			yield(lm.Delta{}, a.callError(ctx, callCtx, model, httpRes, body.err, err))
			return
		}
		if stop != "" {
			final() // the body ended cleanly after the stop reason
			return
		}
		status := 0
		if httpRes != nil {
			status = httpRes.StatusCode
		}
		yield(lm.Delta{}, &lm.Error{Kind: lm.ErrConnection, Model: model, URL: a.URL(), StatusCode: status,
			Message: "stream ended early"})
	}
}

// newParams builds the SDK request for req.
func (a *Client) newParams(model string, req *lm.Request) (anthropic.MessageNewParams, *lm.Error) {
	bad := func(format string, args ...any) (anthropic.MessageNewParams, *lm.Error) {
		return anthropic.MessageNewParams{}, &lm.Error{Kind: lm.ErrBadRequest, Model: model, URL: a.URL(), Message: fmt.Sprintf(format, args...)}
	}
	p := a.Params().Merge(req.Params)
	if p.N != nil && *p.N != 1 {
		if *p.N > 1 {
			return bad("n > 1 is not supported by the Anthropic Messages API")
		}
		return bad("n = %d: n must be 1", *p.N)
	}

	var system []string
	var msgs []anthropic.MessageParam
	last := "" // role of the last message in msgs
	for i, m := range req.Messages {
		switch m.Role {
		case lm.RoleSystem, "developer":
			if m.Content != "" {
				system = append(system, m.Content)
			}
			continue
		case lm.RoleUser, lm.RoleAssistant:
		default:
			return bad("message %d: unknown role %q", i, m.Role)
		}
		if m.Content == "" {
			continue // the API rejects empty text blocks
		}
		block := anthropic.NewTextBlock(m.Content)
		switch {
		case m.Role == last && m.Role == lm.RoleUser:
			msgs[len(msgs)-1].OfUser.Content = append(msgs[len(msgs)-1].OfUser.Content, block)
		case m.Role == last:
			msgs[len(msgs)-1].OfAssistant.Content = append(msgs[len(msgs)-1].OfAssistant.Content, block)
		case m.Role == lm.RoleUser:
			msgs = append(msgs, anthropic.NewUserMessage(block))
		default:
			msgs = append(msgs, anthropic.NewAssistantMessage(block))
		}
		last = m.Role
	}
	if len(msgs) == 0 {
		return bad("no user or assistant message with content")
	}

	maxTokens := a.maxTokens
	if p.MaxTokens != nil {
		maxTokens = *p.MaxTokens
	}
	params := anthropic.MessageNewParams{
		Model:         anthropic.Model(model),
		Messages:      msgs,
		MaxTokens:     int64(maxTokens),
		StopSequences: p.Stop,
	}
	if len(system) > 0 {
		params.System = []anthropic.TextBlockParam{{Text: strings.Join(system, "\n\n")}}
	}

	extra := map[string]any{}
	if a.sampling {
		if p.Temperature != nil {
			extra["temperature"] = *p.Temperature
		}
		if p.TopP != nil {
			extra["top_p"] = *p.TopP
		}
	}
	for _, k := range slices.Sorted(maps.Keys(p.Extra)) {
		if k == "stream" {
			continue // Complete and Stream decide it
		}
		if _, err := json.Marshal(p.Extra[k]); err != nil {
			return bad("encode request: extra field %q: %v", k, err)
		}
		extra[k] = p.Extra[k]
	}
	if len(extra) > 0 {
		params.SetExtraFields(extra)
	}
	return params, nil
}

// response turns a decoded message into a Response.
func (a *Client) response(model string, msg *anthropic.Message, httpRes *http.Response) (*lm.Response, *lm.Error) {
	status := 0
	if httpRes != nil {
		status = httpRes.StatusCode
	}
	if msg == nil || !msg.JSON.Content.Valid() {
		m := "no content in message"
		if msg != nil {
			// A gateway may answer 200 with an error object.
			var eb struct {
				Error json.RawMessage `json:"error"`
			}
			if json.Unmarshal([]byte(msg.RawJSON()), &eb) == nil {
				if text, ok := lm.ErrorText(eb.Error); ok {
					m += ": " + a.Scrub(text)
				}
			}
		}
		return nil, &lm.Error{Kind: lm.ErrBadResponse, Model: model, URL: a.URL(), StatusCode: status, Message: m}
	}
	var text strings.Builder
	for _, b := range msg.Content {
		if b.Type == "text" {
			text.WriteString(b.Text)
		}
	}
	var usage anthropicUsage
	usage.start(msg.Usage)
	res := &lm.Response{
		ID:      msg.ID,
		Model:   string(msg.Model),
		Choices: []lm.Choice{{Text: text.String(), FinishReason: finishReason(string(msg.StopReason))}},
		Usage:   usage.lm(),
	}
	if res.Model == "" {
		res.Model = model
	}
	return res, nil
}

// finishReason maps an Anthropic stop_reason to the OpenAI-style finish
// reasons the rest of DSPEx reads.
func finishReason(stop string) string {
	switch stop {
	case "end_turn", "stop_sequence":
		return "stop"
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "refusal":
		return "content_filter"
	case "tool_use":
		return "tool_calls"
	}
	return stop
}

// anthropicUsage accumulates token counts from a message or a stream.
type anthropicUsage struct {
	input, cacheWrite, cacheRead, output int64
}

// start takes the usage of a message (or a stream's message_start).
func (u *anthropicUsage) start(x anthropic.Usage) {
	u.input, u.cacheWrite, u.cacheRead, u.output = x.InputTokens, x.CacheCreationInputTokens, x.CacheReadInputTokens, x.OutputTokens
}

// delta takes the cumulative counts of a message_delta, where given.
func (u *anthropicUsage) delta(x anthropic.MessageDeltaUsage) {
	if x.JSON.InputTokens.Valid() {
		u.input = x.InputTokens
	}
	if x.JSON.CacheCreationInputTokens.Valid() {
		u.cacheWrite = x.CacheCreationInputTokens
	}
	if x.JSON.CacheReadInputTokens.Valid() {
		u.cacheRead = x.CacheReadInputTokens
	}
	if x.JSON.OutputTokens.Valid() {
		u.output = x.OutputTokens
	}
}

func (u anthropicUsage) lm() lm.Usage {
	prompt := int(u.input + u.cacheWrite + u.cacheRead)
	return lm.Usage{PromptTokens: prompt, CompletionTokens: int(u.output), TotalTokens: prompt + int(u.output)}
}

// callError classifies a failed SDK call. ctx is the caller's context,
// callCtx the one bounded by the configured timeout, httpRes the response
// if one arrived and bodyErr the error reading its body, if any.
func (a *Client) callError(ctx, callCtx context.Context, model string, httpRes *http.Response, bodyErr, err error) *lm.Error {
	if e := a.EndedError(ctx, callCtx, model); e != nil {
		return e
	}
	// The SDK's error values print the request URL and the raw body, so
	// they are read here and never kept as Err.
	var apiErr *anthropic.Error
	if errors.As(err, &apiErr) {
		if apiErr.StatusCode >= 400 {
			return a.statusError(model, apiErr)
		}
		return a.eventError(model, apiErr)
	}
	if httpRes != nil && httpRes.StatusCode >= 400 {
		// The error body could not be read.
		return a.statusError(model, &anthropic.Error{StatusCode: httpRes.StatusCode, Response: httpRes})
	}
	if httpRes == nil {
		return a.SendError(model, err)
	}
	// The status was fine but reading or decoding the body failed. The SDK
	// wraps both in errors alike (a truncated JSON body and a truncated read
	// are both io.ErrUnexpectedEOF), so the body's own read error decides.
	e := &lm.Error{Kind: lm.ErrConnection, Model: model, URL: a.URL(), StatusCode: httpRes.StatusCode, Err: err}
	if bodyErr == nil {
		e.Kind = lm.ErrBadResponse
		e.Message = "decode response: " + a.Scrub(err.Error())
	}
	return e
}

// bodyWatch records the first error reading a response body, other than
// io.EOF. The SDK reads bodies in the calling goroutine, so it needs no lock.
type bodyWatch struct{ err error }

// middleware wraps the response body of a request so that w sees its errors.
func (w *bodyWatch) middleware(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	res, err := next(req)
	if res != nil && res.Body != nil {
		res.Body = &watchedBody{ReadCloser: res.Body, w: w}
	}
	return res, err
}

type watchedBody struct {
	io.ReadCloser
	w *bodyWatch
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.w.err == nil {
		b.w.err = err
	}
	return n, err
}

// statusError classifies an HTTP error response.
func (a *Client) statusError(model string, apiErr *anthropic.Error) *lm.Error {
	var header http.Header
	if apiErr.Response != nil {
		header = apiErr.Response.Header
	}
	return a.HTTPError(model, apiErr.StatusCode, header, a.apiMessage(apiErr), anthropicContextWindow([]byte(apiErr.RawJSON())))
}

// eventError classifies an error event in a stream, by its type.
func (a *Client) eventError(model string, apiErr *anthropic.Error) *lm.Error {
	e := &lm.Error{Model: model, URL: a.URL(), StatusCode: apiErr.StatusCode, Kind: lm.ErrServer,
		Message: "error event in stream"}
	if msg := a.apiMessage(apiErr); msg != "" {
		e.Message += ": " + msg
	}
	switch apiErr.Type() {
	case "rate_limit_error":
		e.Kind = lm.ErrRateLimited
	case "authentication_error", "permission_error":
		e.Kind = lm.ErrAuth
	case "not_found_error":
		e.Kind = lm.ErrNotFound
	case "invalid_request_error", "request_too_large":
		e.Kind = lm.ErrBadRequest
		if anthropicContextWindow([]byte(apiErr.RawJSON())) {
			e.Kind = lm.ErrContextWindow
		}
	}
	return e
}

// apiMessage is the provider's message of an SDK error, with its type,
// bounded and scrubbed of the API key.
func (a *Client) apiMessage(apiErr *anthropic.Error) string {
	msg := apiErr.Message
	if msg == "" {
		msg = strings.TrimSpace(apiErr.RawJSON())
	} else if t := apiErr.Type(); t != "" {
		msg += " (" + string(t) + ")"
	}
	return a.Scrub(msg)
}

// anthropicContextWindow reports whether an error body says the prompt
// does not fit the model: Anthropic's "prompt is too long: N tokens > M
// maximum" and "input length and max_tokens exceed context limit", or the
// markers mentionsContextWindow knows.
func anthropicContextWindow(body []byte) bool {
	lower := strings.ToLower(string(body))
	return strings.Contains(lower, "prompt is too long") || strings.Contains(lower, "context limit") ||
		lm.MentionsContextWindow(body)
}
