package lm

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// UserAgent identifies DSPEx to providers; every built-in provider sends it.
const UserAgent = userAgent

// Endpoint is what an HTTP provider shares with every other: the configured
// model, where calls go (the base URL without credentials, for errors), the
// per-request timeout, the default sampling Params, and how a failed call
// becomes an *Error. Every HTTP provider (core/lm/openai,
// core/lm/anthropic, or one of your own) embeds an Endpoint made by
// NewEndpoint. It is only read after it is made,
// so it is safe for concurrent use.
type Endpoint struct{ e endpoint }

// NewEndpoint checks baseURL (see CheckBaseURL) and returns the endpoint of
// a client of model. client names the kind of client in errors ("anthropic
// client"); apiKey is only used to scrub the key from provider messages; a
// timeout <= 0 leaves each request bounded by the caller's ctx alone.
func NewEndpoint(client, model, baseURL, apiKey string, timeout time.Duration, params Params) (Endpoint, error) {
	u, err := parseBaseURL(client, model, baseURL)
	if err != nil {
		return Endpoint{}, err
	}
	return Endpoint{e: endpoint{model: model, url: u, apiKey: apiKey, timeout: timeout, params: params}}, nil
}

// Model returns the configured model name.
func (e *Endpoint) Model() string { return e.e.model }

// URL returns the base URL without credentials.
func (e *Endpoint) URL() string { return e.e.url }

// Timeout returns the per-request timeout; <= 0 means none.
func (e *Endpoint) Timeout() time.Duration { return e.e.timeout }

// Params returns the default sampling settings, merged under each
// request's. The caller must not modify its Stop or Extra.
func (e *Endpoint) Params() Params { return e.e.params }

// Start checks a call's arguments and returns the model it goes to:
// req.Model, else the configured one. A nil ctx or req is an ErrBadRequest;
// a ctx that has already ended gives its ContextError.
func (e *Endpoint) Start(ctx context.Context, req *Request) (string, *Error) {
	return e.e.start(ctx, req)
}

// CallContext bounds one request by the configured timeout. Cancelling it
// also ends the request, as when a stream's consumer stops early.
func (e *Endpoint) CallContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return e.e.callContext(ctx)
}

// CompleteContext is CallContext for a call that reads its whole response
// before it returns: without a timeout it is ctx itself, which saves a
// context per call (nothing is left to cancel once the body is read and
// closed).
func (e *Endpoint) CompleteContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return e.e.completeContext(ctx)
}

// ContextError is the error for a call whose own ctx ended: ErrCanceled or
// ErrTimeout, the URL, and the context's cause when it has one of its own.
func (e *Endpoint) ContextError(ctx context.Context, model string) *Error {
	return e.e.contextError(ctx, model)
}

// EndedError is the error for a failed request when the caller's ctx or
// callCtx (from CallContext) has ended, and nil when neither has.
func (e *Endpoint) EndedError(ctx, callCtx context.Context, model string) *Error {
	return e.e.endedError(ctx, callCtx, model)
}

// SendError classifies err, the failure of a request that got no response:
// a network timeout is ErrTimeout, a failed connection ErrConnection, and
// anything else means the request could not be built (ErrBadRequest).
func (e *Endpoint) SendError(model string, err error) *Error { return e.e.sendError(model, err) }

// HTTPError is the error for an HTTP error status, with msg the provider's
// (scrubbed) message: ErrAuth (401, 403), ErrNotFound (404), ErrRateLimited
// (429), ErrTimeout (408), ErrContextWindow (400, 413 or 422 when tooLong:
// the body says the prompt does not fit the model), ErrServer (5xx) and
// ErrBadRequest otherwise. On 429 and 5xx, RetryAfter comes from header.
func (e *Endpoint) HTTPError(model string, status int, header http.Header, msg string, tooLong bool) *Error {
	return e.e.httpError(model, status, header, msg, tooLong)
}

// Scrub bounds a provider message to 1 KiB and removes the API key, should
// the provider echo it.
func (e *Endpoint) Scrub(msg string) string { return e.e.scrub(msg) }

// APIKey returns key, else the value of the environment variable env,
// without surrounding space: a key pasted with a trailing newline would be
// an invalid header.
func APIKey(key, env string) string { return apiKeyFrom(key, env) }

// NewTransport returns a clone of http.DefaultTransport with a larger idle
// pool (256 connections per host), for a provider's own http.Client.
func NewTransport() http.RoundTripper { return newTransport() }

// MentionsContextWindow reports whether an error body says the prompt does
// not fit the model, in the words of OpenAI, vLLM, llama.cpp, Ollama and
// others (the tooLong argument of Endpoint.HTTPError).
func MentionsContextWindow(body []byte) bool { return mentionsContextWindow(body) }

// ErrorText reads a provider's error value that is a string, an object with
// a message (and maybe a code), or any other JSON, and reports whether it
// held any text.
func ErrorText(raw json.RawMessage) (string, bool) { return errorText(raw) }

// MaxErrorBody is how much of an error response's body a provider reads and
// searches for the provider's message (64 KiB).
const MaxErrorBody = maxErrorBody

// MaxStreamChoices bounds a choice index in a stream (1024), so that a
// broken server cannot make a consumer allocate without limit; Collect
// refuses a larger one.
const MaxStreamChoices = maxStreamChoices

// JoinURL appends path to base's path, keeping base's query: a base of
// "https://h/v1?key=k" and "/chat/completions" give
// "https://h/v1/chat/completions?key=k". base must pass CheckBaseURL.
func JoinURL(base, path string) string { return joinURL(base, path) }

// ConnectionFailure reports whether err, from sending a request or reading
// its response, comes from a broken connection (rather than, say, a body
// that does not decode).
func ConnectionFailure(err error) bool { return connectionFailure(err) }
