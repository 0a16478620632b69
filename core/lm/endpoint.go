package lm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Bounds on what an error keeps from a provider's answer.
const (
	maxErrorBody    = 64 << 10 // bytes of an error body read and searched
	maxErrorMessage = 1024     // bytes of provider text kept in Error.Message
)

// errRequestTimeout is the cancellation cause of the configured per-request
// timeout, which tells it apart from the caller's own deadline.
var errRequestTimeout = errors.New("lm: request timeout")

// endpoint is what the HTTP providers (OpenAI, Anthropic) share: where
// calls go, the defaults and bound of each call, and how a failed call
// becomes an *Error. A provider's constructor sets it; it is only read
// afterwards, so it is safe for concurrent use.
type endpoint struct {
	model   string        // the configured model
	url     string        // base URL without credentials, for errors
	apiKey  string        // only to scrub it from provider messages
	timeout time.Duration // bounds each request; <= 0: only the caller's ctx does
	params  Params        // default sampling settings, merged under each request's
}

// parseBaseURL checks that base is an absolute http or https URL and
// returns it without credentials, for errors. client and model name the
// client being built in the error ("openai client", "gpt-4o-mini").
func parseBaseURL(client, model, base string) (string, error) {
	if err := CheckBaseURL(base); err != nil {
		return "", fmt.Errorf("lm: new %s %q: %w", client, model, err)
	}
	u, _ := url.Parse(base)
	return redactURL(u), nil
}

// CheckBaseURL reports whether base can be an endpoint's base URL: an
// absolute http or https URL with a host (a query, such as a gateway's
// key, is kept on every request). The error says what is wrong without
// repeating credentials the URL may hold, and suggests "http://" when the
// scheme was left out.
func CheckBaseURL(base string) error {
	if !strings.Contains(base, "://") {
		if u, err := url.Parse("http://" + base); err == nil && u.Hostname() != "" && !strings.ContainsAny(base, " \t") {
			return fmt.Errorf("base url %q is not an absolute http or https url: it has no scheme; did you mean %q?", redactURL(u)[len("http://"):], redactURL(u))
		}
	}
	u, err := url.Parse(base)
	if err != nil {
		// url.Error repeats the URL, which may carry credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("parse base url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("base url %q is not an absolute http or https url", redactURL(u))
	}
	return nil
}

// joinURL appends path to base's path, keeping base's query: a base of
// "https://h/v1?key=k" and "/chat/completions" give
// "https://h/v1/chat/completions?key=k". base must pass CheckBaseURL.
func joinURL(base, path string) string {
	u, err := url.Parse(base)
	if err != nil {
		return strings.TrimSuffix(base, "/") + path
	}
	u.Fragment, u.RawFragment = "", ""
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	if u.RawPath != "" {
		u.RawPath = strings.TrimSuffix(u.RawPath, "/") + path
	}
	return u.String()
}

// redactURL renders u without user info, query or fragment.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	c.RawFragment = ""
	return strings.TrimSuffix(c.String(), "/")
}

// apiKeyFrom returns key, else the value of the environment variable env,
// without surrounding space: a key pasted with a trailing newline would be
// an invalid header.
func apiKeyFrom(key, env string) string {
	if key == "" {
		key = os.Getenv(env)
	}
	return strings.TrimSpace(key)
}

// newTransport clones http.DefaultTransport with a larger idle pool: the
// default keeps two idle connections per host, so a few dozen concurrent
// calls to one server would keep opening new ones. It keeps as many as the
// default pool lets run at once (DefaultPoolSize), so that a connection
// freed by one call is there for the next instead of being closed.
func newTransport() http.RoundTripper {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return http.DefaultTransport
	}
	t = t.Clone()
	t.MaxIdleConns = DefaultPoolSize
	t.MaxIdleConnsPerHost = DefaultPoolSize
	return t
}

// start checks a call's arguments and returns the model it goes to:
// req.Model, else the configured one. A nil ctx or req is an ErrBadRequest;
// a ctx that has already ended gives its contextError.
func (e *endpoint) start(ctx context.Context, req *Request) (string, *Error) {
	if ctx == nil || req == nil {
		return "", &Error{Kind: ErrBadRequest, Model: e.model, URL: e.url, Message: "nil context or request"}
	}
	model := req.Model
	if model == "" {
		model = e.model
	}
	if ctx.Err() != nil {
		return "", e.contextError(ctx, model)
	}
	return model, nil
}

// callContext bounds one request by the configured timeout. Cancelling it
// also ends the request, as when a stream's consumer stops early.
func (e *endpoint) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if e.timeout > 0 {
		return context.WithTimeoutCause(ctx, e.timeout, errRequestTimeout)
	}
	return context.WithCancel(ctx)
}

// completeContext is callContext for a call that reads its whole response
// before it returns: without a timeout it is ctx itself, which saves a
// context per call (nothing is left to cancel once the body is read and
// closed).
func (e *endpoint) completeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if e.timeout > 0 {
		return context.WithTimeoutCause(ctx, e.timeout, errRequestTimeout)
	}
	return ctx, func() {}
}

// contextError is the error for a call whose own ctx ended: its kind, the
// URL, and the context's cause when it has one of its own.
func (e *endpoint) contextError(ctx context.Context, model string) *Error {
	err := contextKindError(ctx, model)
	err.URL = e.url
	if cause := context.Cause(ctx); cause != nil && cause != err.Err {
		err.Message = cause.Error()
	}
	return err
}

// endedError is the error for a failed request when the caller's ctx or
// callCtx (its callContext) has ended, and nil when neither has.
func (e *endpoint) endedError(ctx, callCtx context.Context, model string) *Error {
	if ctx.Err() != nil {
		return e.contextError(ctx, model)
	}
	if callCtx.Err() != nil {
		return &Error{Kind: ErrTimeout, Model: model, URL: e.url, Err: callCtx.Err(),
			Message: fmt.Sprintf("no complete response within %s", e.timeout)}
	}
	return nil
}

// sendError classifies err, the failure of a request that got no response:
// a network timeout is ErrTimeout, a failed connection ErrConnection, and
// anything else means the request could not be built (ErrBadRequest).
func (e *endpoint) sendError(model string, err error) *Error {
	out := &Error{Kind: ErrConnection, Model: model, URL: e.url, Err: err}
	var ue *url.Error
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		out.Kind = ErrTimeout
	case errors.As(err, &ue) || connectionFailure(err):
	default:
		// Nothing was sent. An SDK's error may print the request URL and
		// body, so only its scrubbed text is kept.
		out.Kind = ErrBadRequest
		out.Message = "build request: " + e.scrub(err.Error())
		out.Err = nil
	}
	return out
}

// connectionFailure reports whether err comes from a broken connection.
func connectionFailure(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// httpError is the error for an HTTP error status, with msg the provider's
// (scrubbed) message: ErrAuth (401, 403), ErrNotFound (404), ErrRateLimited
// (429), ErrTimeout (408), ErrContextWindow (400, 413 or 422 when tooLong:
// the body says the prompt does not fit the model), ErrServer (5xx) and
// ErrBadRequest otherwise. On 429 and 5xx, RetryAfter comes from header.
func (e *endpoint) httpError(model string, status int, header http.Header, msg string, tooLong bool) *Error {
	out := &Error{Model: model, URL: e.url, StatusCode: status, Message: msg}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		out.Kind = ErrAuth
	case status == http.StatusNotFound:
		out.Kind = ErrNotFound
	case status == http.StatusTooManyRequests:
		out.Kind = ErrRateLimited
		out.RetryAfter = retryAfter(header, time.Now())
	case status == http.StatusRequestTimeout:
		out.Kind = ErrTimeout
	case (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge ||
		status == http.StatusUnprocessableEntity) && tooLong:
		out.Kind = ErrContextWindow
	case status >= 500: // Anthropic's 529 "overloaded" included
		out.Kind = ErrServer
		out.RetryAfter = retryAfter(header, time.Now())
	default:
		out.Kind = ErrBadRequest
	}
	return out
}

// scrub bounds a provider message to maxErrorMessage bytes and removes the
// API key, should the provider echo it.
func (e *endpoint) scrub(msg string) string {
	if e.apiKey != "" {
		msg = strings.ReplaceAll(msg, e.apiKey, "[redacted]")
	}
	if len(msg) > maxErrorMessage {
		cut := maxErrorMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

// retryAfter reads the wait a server asked for: retry-after-ms (OpenAI's
// millisecond form) first, then Retry-After in seconds or as an HTTP date.
// It returns 0 when neither is present or valid, or the time has passed.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After-Ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 && ms < float64(365*24*time.Hour/time.Millisecond) {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 && s < float64(365*24*time.Hour/time.Second) {
			return time.Duration(s * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// mentionsContextWindow reports whether an error body says the prompt does
// not fit the model, in the words of OpenAI, vLLM, llama.cpp, Ollama and
// others.
func mentionsContextWindow(body []byte) bool {
	lower := string(bytes.ToLower(body))
	for _, marker := range [...]string{
		"context_length_exceeded",
		"exceed_context_size",
		"maximum context length",
		"context window",
		"context length",
		"context size",
		"too many tokens",
	} {
		if strings.Contains(lower, marker) {
			return true
		}
	}
	return false
}

// errorText reads an error value that is a string, an object with a
// message (and maybe a code), or any other JSON.
func errorText(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, s != ""
	}
	var obj struct {
		Message string          `json:"message"`
		Code    json.RawMessage `json:"code"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Message != "" {
		if code := strings.Trim(string(obj.Code), `"`); code != "" && code != "null" {
			return obj.Message + " (code " + code + ")", true
		}
		return obj.Message, true
	}
	return string(raw), true
}

// userAgent identifies DSPEx to providers.
const userAgent = "dspex/0.1 (+https://github.com/dspex/dspex)"
