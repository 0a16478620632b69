package serve

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/lm"
)

// Error types: the "type" of an error answer's body, one per cause.
const (
	// 400: the body is not a JSON object of the program's inputs.
	ErrorTypeInvalidRequest = "invalid_request"
	// 413: the body is larger than Config.MaxBodyBytes.
	ErrorTypeTooLarge = "request_too_large"
	// 404 and 405: no such endpoint, or the wrong method.
	ErrorTypeNotFound         = "not_found"
	ErrorTypeMethodNotAllowed = "method_not_allowed"
	// 429: every slot is busy and the queue is full.
	ErrorTypeOverloaded = "overloaded"
	// 503: the LM endpoint refused the call (rate limited, circuit breaker
	// open, its own queue full).
	ErrorTypeLMUnavailable = "lm_unavailable"
	// 503 from /healthz while Serve drains.
	ErrorTypeShuttingDown = "shutting_down"
	// 504: the request's deadline passed, or the LM call timed out.
	ErrorTypeTimeout = "timeout"
	// 502: the LM answered something the adapter could not parse.
	ErrorTypeParse = "parse_error"
	// 502: the LM endpoint failed (server error, connection failure,
	// malformed response).
	ErrorTypeLM = "lm_error"
	// 500: anything else, a contained panic included.
	ErrorTypeInternal = "internal_error"
	// Recorded, never sent: the client went away before the answer.
	ErrorTypeCanceled = "canceled"
)

// errRequestTimeout is the cause of a request context that reached
// Config.RequestTimeout.
var errRequestTimeout = errors.New("serve: request timeout")

// Error is an error answer: its status, type and message, and for some the
// fields at fault or the wait the client should make before retrying.
type Error struct {
	Status  int
	Type    string
	Message string
	// Fields names the input fields at fault (unknown or missing ones).
	Fields []string
	// RetryAfter, when positive, is sent as the Retry-After header.
	RetryAfter time.Duration
	// detail is what is logged and traced instead of Message, when the
	// client gets a sanitised message: the full error, redacted.
	detail string
}

func (e *Error) Error() string {
	return fmt.Sprintf("serve: %d %s: %s", e.Status, e.Type, e.Message)
}

// body is the JSON answer: {"error": {"message", "type", "fields"}}.
func (e *Error) body() []byte {
	type detail struct {
		Message string   `json:"message"`
		Type    string   `json:"type"`
		Fields  []string `json:"fields,omitempty"`
	}
	return marshal(struct {
		Error detail `json:"error"`
	}{detail{e.Message, e.Type, e.Fields}})
}

// marshal encodes v as JSON without escaping <, > and & (signatures hold
// "->"), and without a trailing newline.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only the server's own types of strings and numbers are encoded,
		// which cannot fail; answer something well-formed all the same.
		return []byte(`{"error": {"message": "encode the answer", "type": "internal_error"}}`)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func invalid(msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: ErrorTypeInvalidRequest, Message: msg}
}

// retryAfterSeconds writes d as Retry-After's whole seconds, rounded up and
// at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

// contextError answers a request whose own context ended: its client went
// away, or its deadline passed. ok is false when neither happened.
func (s *Server) contextError(ctx, client context.Context) (*Error, bool) {
	switch {
	case client.Err() != nil:
		return &Error{Status: statusClientClosed, Type: ErrorTypeCanceled, Message: "the client closed the request"}, true
	case ctx.Err() != nil:
		return &Error{Status: http.StatusGatewayTimeout, Type: ErrorTypeTimeout,
			Message: fmt.Sprintf("the request did not finish within the server's %s request timeout", s.cfg.RequestTimeout)}, true
	}
	return nil, false
}

// admissionError answers a request that got no slot.
func (s *Server) admissionError(ctx, client context.Context, err error) *Error {
	if errors.Is(err, lm.ErrQueueFull) {
		st := s.Stats()
		return &Error{Status: http.StatusTooManyRequests, Type: ErrorTypeOverloaded, RetryAfter: s.cfg.RetryAfter,
			Message: fmt.Sprintf("server overloaded: %d requests running and %d waiting; retry after %s", st.Running, st.Waiting, s.cfg.RetryAfter)}
	}
	if e, ok := s.contextError(ctx, client); ok {
		if e.Type == ErrorTypeTimeout {
			e.Message = fmt.Sprintf("the request waited for a free slot past the server's %s request timeout", s.cfg.RequestTimeout)
		}
		return e
	}
	return &Error{Status: http.StatusInternalServerError, Type: ErrorTypeInternal, Message: fmt.Sprintf("wait for a slot: %v", err)}
}

// programError maps the program's error to an answer.
func (s *Server) programError(ctx, client context.Context, err error) *Error {
	if e, ok := s.contextError(ctx, client); ok {
		return e
	}
	msg := err.Error()
	var pe *adapter.ParseError
	switch {
	case errors.Is(err, lm.ErrBreakerOpen):
		// The breaker says how long it stays open; the server's own
		// Retry-After stands in should it not.
		return &Error{Status: http.StatusServiceUnavailable, Type: ErrorTypeLMUnavailable, Message: msg,
			RetryAfter: cmp.Or(lm.RetryAfter(err), s.cfg.RetryAfter)}
	case errors.Is(err, lm.ErrRateLimited):
		return &Error{Status: http.StatusServiceUnavailable, Type: ErrorTypeLMUnavailable, Message: msg, RetryAfter: lm.RetryAfter(err)}
	case errors.Is(err, lm.ErrQueueFull):
		return &Error{Status: http.StatusServiceUnavailable, Type: ErrorTypeLMUnavailable, Message: msg, RetryAfter: s.cfg.RetryAfter}
	case errors.Is(err, lm.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusGatewayTimeout, Type: ErrorTypeTimeout, Message: msg}
	case errors.As(err, &pe):
		return &Error{Status: http.StatusBadGateway, Type: ErrorTypeParse, Message: msg}
	case errors.Is(err, lm.ErrServer), errors.Is(err, lm.ErrConnection), errors.Is(err, lm.ErrBadResponse):
		return &Error{Status: http.StatusBadGateway, Type: ErrorTypeLM, Message: msg}
	}
	return &Error{Status: http.StatusInternalServerError, Type: ErrorTypeInternal, Message: msg}
}

// lmKinds are the LM failures a client is told of by name: their texts are
// the lm package's own, holding nothing of the endpoint's configuration.
var lmKinds = []error{
	lm.ErrBreakerOpen, lm.ErrQueueFull, lm.ErrRateLimited, lm.ErrTimeout, lm.ErrServer, lm.ErrConnection,
	lm.ErrBadResponse, lm.ErrAuth, lm.ErrNotFound, lm.ErrContextWindow, lm.ErrBadRequest,
}

// sanitise keeps err's own text, which may hold the LM endpoint's URL and
// query, header values a provider echoed or its raw answer, from the
// client: e, made from err by programError, gets a message naming only the
// kind of failure and the request id, under which the full error,
// redacted, is logged and traced. Answers of the server's own making
// (timeouts, a closed client) are left as they are.
func (s *Server) sanitise(e *Error, err error, requestID string) *Error {
	if e.Message != err.Error() {
		return e
	}
	what := "internal error"
	if e.Type == ErrorTypeTimeout {
		what = "the program timed out"
	}
	var pe *adapter.ParseError
	switch {
	case errors.As(err, &pe):
		what = "the LM's answer could not be parsed into the output fields"
	default:
		for _, k := range lmKinds {
			if errors.Is(err, k) {
				what = strings.TrimPrefix(k.Error(), "lm: ")
				if le := (*lm.Error)(nil); errors.As(err, &le) && le.StatusCode != 0 {
					what += fmt.Sprintf(" (HTTP %d)", le.StatusCode)
				}
				what = "LM call failed: " + what
				break
			}
		}
	}
	out := *e
	out.detail = s.redact(err.Error())
	out.Message = fmt.Sprintf("%s; the details are in the server's log and traces under request id %s", what, requestID)
	return &out
}

// redact removes the configured secrets from text that is logged or
// traced.
func (s *Server) redact(text string) string {
	if s.cfg.Redact == nil {
		return text
	}
	return s.cfg.Redact(text)
}
