package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
)

// Paths the server answers.
const (
	PathPredict = "/v1/predict"
	PathProgram = "/v1/program"
	PathHealth  = "/healthz"
)

// RequestIDHeader carries the id of the request's trace span in every
// answer, so a client can find the request in the traces.
const RequestIDHeader = "X-Request-Id"

// maxStack bounds the stack of a contained panic kept in the request event.
const maxStack = 8 << 10

// maxRecordedPath bounds the method and path kept in the request event
// (and echoed in a 404 or 405): a flood of requests with huge paths must
// not fill the logs and the trace database.
const maxRecordedPath = 1 << 10

// statusClientClosed is recorded (never sent) for requests whose client
// went away before the answer, as nginx logs them.
const statusClientClosed = 499

// exchange is one request's response writer, recording what was answered
// for the request event.
type exchange struct {
	http.ResponseWriter
	status int
	info   event.HTTPRequestInfo
	// client is the request's own context: it ends when the client goes
	// away (or the connection is closed).
	client context.Context
}

func (x *exchange) WriteHeader(code int) {
	if x.status == 0 {
		x.status = code
	}
	x.ResponseWriter.WriteHeader(code)
}

func (x *exchange) Write(b []byte) (int, error) {
	if x.status == 0 {
		x.status = http.StatusOK
	}
	return x.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (x *exchange) Unwrap() http.ResponseWriter { return x.ResponseWriter }

// writeJSON answers status with a JSON body.
func (x *exchange) writeJSON(status int, body []byte) {
	h := x.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	x.WriteHeader(status)
	_, _ = x.Write(append(body, '\n'))
}

// fail answers e as a JSON error and records it for the request event.
func (x *exchange) fail(e *Error) {
	x.info.Error, x.info.ErrorType = e.Message, e.Type
	if e.detail != "" {
		x.info.Error = e.detail
	}
	if e.Status == statusClientClosed {
		// Nobody is listening; record the outcome only.
		x.status = statusClientClosed
		return
	}
	if e.RetryAfter > 0 {
		x.Header().Set("Retry-After", retryAfterSeconds(e.RetryAfter))
	}
	x.writeJSON(e.Status, e.body())
}

// serveHTTP is the server's handler: it places the request in a span of
// its own with the base context's values and the client's cancellation,
// routes it, contains a panic, and publishes the request event.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	base := context.Background()
	if s.cfg.BaseContext != nil {
		if b := s.cfg.BaseContext(); b != nil {
			base = b
		}
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(base))
	defer cancel()
	stop := context.AfterFunc(r.Context(), cancel)
	defer stop()
	ctx, span := event.StartSpan(ctx)

	// A client that does not read its answer must not hold the handler
	// (and a prediction slot) past its deadline, nor the drain. Handlers
	// mounted on another http.Server leave deadlines to that server.
	_ = http.NewResponseController(w).SetWriteDeadline(start.Add(s.cfg.RequestTimeout + writeGrace))
	x := &exchange{ResponseWriter: w, client: r.Context()}
	x.info = event.HTTPRequestInfo{Method: truncate(r.Method, maxRecordedPath), Path: truncate(r.URL.Path, maxRecordedPath), Remote: r.RemoteAddr}
	x.Header().Set(RequestIDHeader, span.SpanID)
	defer func() {
		if p := recover(); p != nil {
			x.info.Stack = truncate(string(debug.Stack()), maxStack)
			e := &Error{Status: http.StatusInternalServerError, Type: ErrorTypeInternal, Message: "internal error: the program panicked"}
			if x.status == 0 {
				x.fail(e)
			}
			x.info.Error, x.info.ErrorType = s.redact(fmt.Sprintf("panic: %v", p)), ErrorTypeInternal
		}
		if x.status == 0 && r.Context().Err() != nil {
			x.status = statusClientClosed
		}
		x.info.Status = x.status
		x.info.Duration = time.Since(start)
		// Health probes would flood the traces; only failed ones are kept.
		if x.info.Path != PathHealth || x.status != http.StatusOK {
			// The answer goes out first: a trace store that makes
			// publishers wait must not delay it.
			if f, ok := x.ResponseWriter.(http.Flusher); ok && x.status != 0 && x.status != statusClientClosed {
				f.Flush()
			}
			info := x.info
			event.Publish(ctx, event.HTTPRequest, span, &info)
		}
	}()
	r = r.WithContext(ctx)
	switch r.URL.Path {
	case PathPredict:
		if !allow(x, r, http.MethodPost) {
			return
		}
		s.predict(x, r)
	case PathProgram:
		if !allow(x, r, http.MethodGet, http.MethodHead) {
			return
		}
		s.describe(x)
	case PathHealth:
		if !allow(x, r, http.MethodGet, http.MethodHead) {
			return
		}
		s.health(x)
	default:
		x.fail(&Error{Status: http.StatusNotFound, Type: ErrorTypeNotFound,
			Message: fmt.Sprintf("no endpoint %s; the endpoints are POST %s, GET %s and GET %s", x.info.Path, PathPredict, PathProgram, PathHealth)})
	}
}

// allow answers 405 unless r's method is one of methods.
func allow(x *exchange, r *http.Request, methods ...string) bool {
	if slices.Contains(methods, r.Method) {
		return true
	}
	x.Header().Set("Allow", strings.Join(methods, ", "))
	x.fail(&Error{Status: http.StatusMethodNotAllowed, Type: ErrorTypeMethodNotAllowed,
		Message: fmt.Sprintf("%s %s is not allowed; use %s", x.info.Method, x.info.Path, strings.Join(methods, " or "))})
	return false
}

// predict answers POST /v1/predict.
func (s *Server) predict(x *exchange, r *http.Request) {
	ctx, cancel := context.WithTimeoutCause(r.Context(), s.cfg.RequestTimeout, errRequestTimeout)
	defer cancel()
	inputs, e := s.readInputs(x, r)
	if e != nil {
		x.fail(e)
		return
	}
	release, wait, err := s.slots.Acquire(ctx)
	x.info.QueueWait = wait
	if err != nil {
		x.fail(s.admissionError(ctx, x.client, err))
		return
	}
	pred, err := s.forward(ctx, inputs, release)
	if err == nil && pred == nil {
		err = errors.New("the program returned no prediction")
	}
	if err != nil {
		x.fail(s.sanitise(s.programError(ctx, x.client, err), err, x.Header().Get(RequestIDHeader)))
		return
	}
	x.writeJSON(http.StatusOK, outputJSON(s.cfg.Signature, pred))
}

// forward runs the program and then releases the prediction slot, so that
// writing the answer holds none.
func (s *Server) forward(ctx context.Context, inputs module.Inputs, release func()) (*example.Prediction, error) {
	defer release()
	return s.cfg.Program.Forward(ctx, inputs)
}

// readInputs reads the request body as one JSON object of the program's
// input fields, checked as dspex run checks its inputs
// (signature.CheckInputs: no unknown fields, no missing ones, values of the
// fields' types).
func (s *Server) readInputs(x *exchange, r *http.Request) (module.Inputs, *Error) {
	body, err := io.ReadAll(http.MaxBytesReader(x.ResponseWriter, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Type: ErrorTypeTooLarge,
				Message: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
		}
		return nil, invalid(fmt.Sprintf("read request body: %v", err))
	}
	sig := s.cfg.Signature
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, invalid(fmt.Sprintf("empty request body; expected a JSON object of the input fields (%s)", fieldList(sig.Inputs())))
	}
	// Decoded as Python's json.loads would: nested objects keep their key
	// order and integers every digit, so prompts print them as DSPy does.
	v, err := pyjson.Decode(body)
	if te := (*pyjson.TrailingDataError)(nil); errors.As(err, &te) {
		return nil, invalid(fmt.Sprintf("malformed JSON: unexpected data after the object at offset %d", te.Offset))
	} else if err != nil {
		return nil, invalid(fmt.Sprintf("malformed JSON: %v", err))
	}
	members, ok := v.(pyjson.Object)
	if !ok {
		return nil, invalid(fmt.Sprintf("expected a JSON object of the input fields (%s), got %s", fieldList(sig.Inputs()), jsonKind(v)))
	}
	obj := make(map[string]any, len(members))
	for _, m := range members {
		obj[m.Key] = m.Value
	}
	if err := sig.CheckInputs(obj); err != nil {
		e := invalid(err.Error())
		if ie := (*signature.InputError)(nil); errors.As(err, &ie) {
			e.Fields = ie.Fields
		}
		return nil, e
	}
	return obj, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case int64, float64, *big.Int:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

func fieldList(fs []signature.Field) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "\n... (truncated)"
}

// outputJSON writes a prediction's output fields in signature order; a
// field the module adds (ChainOfThought's reasoning) comes first, and any
// other field the prediction holds last, as dspex run writes them.
func outputJSON(sig *signature.Signature, pred *example.Prediction) []byte {
	obj := pyjson.Object{}
	seen := map[string]bool{}
	if v, ok := pred.Get(module.ReasoningField); ok && !sig.IsOutput(module.ReasoningField) {
		obj = append(obj, pyjson.Member{Key: module.ReasoningField, Value: v})
		seen[module.ReasoningField] = true
	}
	for _, f := range sig.Outputs() {
		if v, ok := pred.Get(f.Name); ok {
			obj = append(obj, pyjson.Member{Key: f.Name, Value: f.Type.Normalize(v)})
			seen[f.Name] = true
		}
	}
	for _, k := range pred.Keys() {
		if !seen[k] {
			v, _ := pred.Get(k)
			obj = append(obj, pyjson.Member{Key: k, Value: v})
		}
	}
	b, _ := obj.MarshalJSON()
	return b
}

// health answers GET /healthz.
func (s *Server) health(x *exchange) {
	st := s.Stats()
	body := struct {
		Status  string `json:"status"`
		Running int    `json:"running"`
		Waiting int    `json:"waiting"`
	}{"ok", st.Running, st.Waiting}
	status := http.StatusOK
	if s.Draining() {
		body.Status, status = "draining", http.StatusServiceUnavailable
		x.info.Error, x.info.ErrorType = "the server is shutting down", ErrorTypeShuttingDown
	}
	x.writeJSON(status, marshal(body))
}

// FieldInfo describes a signature field in /v1/program.
type FieldInfo struct {
	Name string `json:"name"`
	// Type is the field's type as a signature string writes it
	// ("str", "list[str]", "int | None").
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
	// Optional is set on inputs that may be left out.
	Optional bool `json:"optional,omitempty"`
}

// PredictorInfo describes one of the program's predictors in /v1/program,
// as it is now (instructions and demos loaded from a state file show).
type PredictorInfo struct {
	Name         string `json:"name"`
	Signature    string `json:"signature"`
	Instructions string `json:"instructions"`
	Demos        int    `json:"demos"`
}

// ProgramInfo is the body of GET /v1/program.
type ProgramInfo struct {
	Module       string          `json:"module"`
	Signature    string          `json:"signature"`
	Instructions string          `json:"instructions"`
	Inputs       []FieldInfo     `json:"inputs"`
	Outputs      []FieldInfo     `json:"outputs"`
	Predictors   []PredictorInfo `json:"predictors"`
}

// Program describes the served program.
func (s *Server) Program() ProgramInfo {
	sig := s.cfg.Signature
	fields := func(fs []signature.Field) []FieldInfo {
		out := make([]FieldInfo, len(fs))
		for i, f := range fs {
			out[i] = FieldInfo{Name: f.Name, Type: f.Type.String(), Description: f.Desc,
				Optional: f.Type != nil && f.Type.Kind == signature.Optional}
		}
		return out
	}
	info := ProgramInfo{
		Module:       s.cfg.Module,
		Signature:    sig.String(),
		Instructions: sig.Instructions(),
		Inputs:       fields(sig.Inputs()),
		Outputs:      fields(sig.Outputs()),
		Predictors:   []PredictorInfo{},
	}
	for _, np := range s.cfg.Program.NamedPredictors() {
		psig := np.Predictor.Signature()
		info.Predictors = append(info.Predictors, PredictorInfo{Name: np.Name, Signature: psig.String(),
			Instructions: psig.Instructions(), Demos: len(np.Predictor.Demos())})
	}
	return info
}

// describe answers GET /v1/program.
func (s *Server) describe(x *exchange) {
	x.writeJSON(http.StatusOK, marshal(s.Program()))
}
