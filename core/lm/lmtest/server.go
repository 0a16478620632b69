package lmtest

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultModel is the model name GET /v1/models always lists.
const DefaultModel = "dspex-sim"

// SimulatorHeader is set to "true" on every response, so no answer can be
// mistaken for a real model's.
const SimulatorHeader = "X-DSPEx-Simulator"

// Owner is the owned_by of every listed model and the system_fingerprint
// of every completion.
const Owner = "dspex-simulator"

// Defaults for Config fields left zero.
const (
	DefaultMaxBodyBytes = 8 << 20
	DefaultMaxInFlight  = 1024
	DefaultRecordLimit  = 256
)

// shutdownGrace bounds how long Close waits for in-flight responses.
const shutdownGrace = 5 * time.Second

// ErrClosed is returned when a closed server is asked to listen.
var ErrClosed = errors.New("lmtest: server closed")

// Config configures a simulator. The zero value serves placeholder answers
// for model "dspex-sim" (any model name is accepted) with no delay, no
// faults and no API key.
type Config struct {
	// Seed makes placeholder answers, latency samples and fault choices
	// reproducible. Zero is a seed like any other.
	Seed int64
	// Models are listed by GET /v1/models after DefaultModel. Requests may
	// name any model whether listed or not.
	Models []string
	// Script scripts answers; nil answers with placeholders only. The
	// server does not modify it; the caller must not either, once passed.
	Script *Script
	// Dataset, when set, answers prompts that ask one of its questions,
	// correctly or not as its skill model decides (see the package
	// documentation). Script rules come first: a request a rule matches
	// is answered by the rule alone.
	Dataset *Dataset
	// Latency is added before every model request is answered or failed.
	Latency Latency
	// Faults inject failures; see Fault for how requests are chosen.
	Faults []Fault
	// APIKey, when set, must be sent as "Authorization: Bearer KEY" on
	// every /v1/ request; others get 401.
	APIKey string
	// MaxBodyBytes bounds request bodies (413 above it). Default
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxInFlight bounds concurrent model requests; requests beyond it get
	// 503 at once. Default DefaultMaxInFlight.
	MaxInFlight int
	// RecordLimit is how many recent model requests Requests keeps.
	// Default DefaultRecordLimit; negative keeps none.
	RecordLimit int
	// Logger, if set, gets one line per request. Nil logs nothing.
	Logger *slog.Logger
	// FineTuneStep is how long each stage of a simulated fine-tuning job
	// lasts (see the package documentation). Default DefaultFineTuneStep.
	FineTuneStep time.Duration
	// MaxFileBytes bounds an uploaded file (413 above it). Default
	// DefaultMaxFileBytes.
	MaxFileBytes int64
	// FineTuneFaults fail requests to the fine-tuning endpoints (files
	// and jobs) as Faults fail model requests; only the kinds that answer
	// instead of the endpoint apply (429, 500, 502, 503, hang, reset).
	// Their requests are numbered apart from model requests, from 1.
	FineTuneFaults []Fault
}

// Message is one chat message of a recorded request.
type Message struct {
	Role    string
	Content string
}

// RecordedRequest is a model request as the server saw and answered it.
type RecordedRequest struct {
	// Seq is the request's sequence number (1 for the first valid model
	// request); 0 for requests rejected before it was assigned.
	Seq uint64
	// Path is the URL path, e.g. "/v1/chat/completions".
	Path     string
	Model    string
	Messages []Message
	// Input holds the texts of an embeddings request.
	Input  []string
	Stream bool
	N      int
	Seed   *int64
	// ResponseFormat is the response_format type ("" when absent).
	ResponseFormat string
	// ResponseSchema is the response_format's JSON schema as sent, key
	// order kept ("" when there is none).
	ResponseSchema string
	// Status is the HTTP status answered; 0 when the connection was
	// dropped or the client left before an answer.
	Status int
	// Fault is the fault injected, "" for none.
	Fault FaultKind
	// Rule is the index of the script rule used, -1 for none.
	Rule int
	// Example is the index of the dataset example answered (see
	// Dataset.Examples), -1 for none; Correct says, per choice, whether
	// the answer drawn was the gold one.
	Example int
	Correct []bool
	// Completions are the choices' texts, in order.
	Completions []string
	// Start is when the request arrived; Duration is how long it took to
	// answer (or to end), latency included.
	Start    time.Time
	Duration time.Duration
}

// Stats counts what the server has done since it was created.
type Stats struct {
	// Requests counts model requests (chat completions and embeddings)
	// that passed the API key check, including those then refused.
	Requests int64
	// Completions counts chat completion responses with choices,
	// truncated and badfields ones included.
	Completions int64
	// Embeddings counts answered embeddings requests.
	Embeddings int64
	// Rejected counts requests refused with a 4xx (bad JSON, bad key,
	// unknown path, wrong method) or because MaxInFlight was reached.
	Rejected int64
	// Faults counts injected faults by kind.
	Faults map[FaultKind]int64
	// ScriptHits counts completions answered by a script rule.
	ScriptHits int64
	// DatasetHits counts completions answered from the dataset;
	// DatasetAnswers counts their choices and DatasetCorrect the choices
	// whose drawn answer was the gold one (a truncated or badfields fault
	// may still spoil its text).
	DatasetHits, DatasetAnswers, DatasetCorrect int64
	// ProposerHits counts completions answered by the dataset's proposer
	// behaviour (instruction proposals and dataset or program
	// descriptions).
	ProposerHits int64
	// PromptTokens and CompletionTokens sum the usage reported.
	PromptTokens, CompletionTokens int64
	// InFlight is how many model requests are being answered now;
	// PeakInFlight the most there have been at once.
	InFlight, PeakInFlight int64
	// Files counts files uploaded and FineTuneJobs fine-tuning jobs
	// created (requests refused are not counted).
	Files, FineTuneJobs int64
}

// Server is the simulated LM. It is an http.Handler serving the
// OpenAI-compatible endpoints under /v1 (chat/completions, embeddings,
// models) and /healthz. All methods are safe for concurrent use.
type Server struct {
	cfg    Config
	models []string
	rules  []Rule

	seq      atomic.Uint64
	inFlight atomic.Int64
	peak     atomic.Int64  // the most requests inFlight has counted
	done     chan struct{} // closed by Close: ends hangs and latency waits

	mu       sync.Mutex // guards the fields below
	ruleUses []int
	stats    Stats
	ring     []RecordedRequest
	ringNext int

	connMu sync.Mutex // guards conns
	// conns holds the state of each open connection, so Close can wait
	// for responses being written without waiting for idle or unused ones.
	conns map[net.Conn]http.ConnState

	lnMu      sync.Mutex // guards the listener fields below
	httpSrv   *http.Server
	url       string
	serveDone chan struct{}
	serveErr  error // set before serveDone closes
	stopCtx   func() bool

	closeOnce sync.Once
	closeErr  error

	ft    fineTuning
	ftSeq atomic.Uint64    // numbers fine-tuning requests, for FineTuneFaults
	clock func() time.Time // nil: time.Now; set by tests
}

// New validates cfg and builds a server. It does not listen: use it as an
// http.Handler, or call ListenAndServe, or use Start instead.
func New(cfg Config) (*Server, error) {
	if err := cfg.Latency.Validate(); err != nil {
		return nil, err
	}
	for i, f := range cfg.Faults {
		if err := f.Validate(); err != nil {
			return nil, fmt.Errorf("lmtest: fault %d: %w", i+1, err)
		}
	}
	if err := cfg.Script.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxBodyBytes < 0 || cfg.MaxInFlight < 0 {
		return nil, errors.New("lmtest: max body bytes and max in flight must not be negative")
	}
	if err := validateFineTuneFaults(cfg.FineTuneFaults); err != nil {
		return nil, err
	}
	cfg.FineTuneFaults = slices.Clone(cfg.FineTuneFaults)
	if cfg.FineTuneStep < 0 || cfg.MaxFileBytes < 0 {
		return nil, errors.New("lmtest: fine-tune step and max file bytes must not be negative")
	}
	if cfg.FineTuneStep == 0 {
		cfg.FineTuneStep = DefaultFineTuneStep
	}
	if cfg.MaxFileBytes == 0 {
		cfg.MaxFileBytes = DefaultMaxFileBytes
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.RecordLimit == 0 {
		cfg.RecordLimit = DefaultRecordLimit
	}
	cfg.Faults = slices.Clone(cfg.Faults)
	models := []string{DefaultModel}
	for _, m := range cfg.Models {
		if strings.TrimSpace(m) == "" {
			return nil, errors.New("lmtest: empty model name")
		}
		if !slices.Contains(models, m) {
			models = append(models, m)
		}
	}
	s := &Server{cfg: cfg, models: models, done: make(chan struct{})}
	if cfg.Script != nil {
		s.rules = slices.Clone(cfg.Script.Rules)
		s.ruleUses = make([]int, len(s.rules))
	}
	s.stats.Faults = map[FaultKind]int64{}
	return s, nil
}

// Start builds a server and serves it on 127.0.0.1 at a free port in a
// goroutine the server owns. The server stops when ctx is cancelled or
// Close is called; call Close in any case, to wait for it.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lmtest: start: %w", err)
	}
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	s.lnMu.Lock()
	s.stopCtx = context.AfterFunc(ctx, func() { _ = s.Close() })
	s.lnMu.Unlock()
	return s, nil
}

// ListenAndServe listens on addr (host:port; port 0 picks a free one),
// calls ready with the OpenAI base URL ("http://HOST:PORT/v1") once
// connections are accepted, and serves until ctx is cancelled or Close is
// called. It then shuts down as Close does and returns nil, or the error
// that stopped it.
func (s *Server) ListenAndServe(ctx context.Context, addr string, ready func(baseURL string)) error {
	if err := s.listen(addr); err != nil {
		return err
	}
	if ready != nil {
		ready(s.URL())
	}
	s.lnMu.Lock()
	served := s.serveDone
	s.lnMu.Unlock()
	select {
	case <-ctx.Done():
	case <-served:
	}
	return s.Close()
}

func (s *Server) listen(addr string) error {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	if s.httpSrv != nil {
		return errors.New("lmtest: server is already listening")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("lmtest: listen on %s: %w", addr, err)
	}
	s.url = baseURL(ln.Addr())
	errLog := log.New(io.Discard, "", 0)
	if s.cfg.Logger != nil {
		errLog = slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog, ConnState: s.trackConn}
	s.httpSrv = srv
	s.serveDone = make(chan struct{})
	done := s.serveDone
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = fmt.Errorf("lmtest: serve: %w", err)
		}
	}()
	return nil
}

// baseURL is the OpenAI base URL for a listening address; an unspecified
// host (0.0.0.0, ::) is written as 127.0.0.1 so the URL can be dialled.
func baseURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String() + "/v1"
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/v1"
}

// URL returns the OpenAI base URL, "http://127.0.0.1:PORT/v1", or "" when
// the server is not listening.
func (s *Server) URL() string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return s.url
}

// Close stops the server: hanging requests and latency waits end at once
// (their clients get 503), Close waits up to a few seconds for responses
// being written, then closes the listener and every connection and waits
// for the serving goroutine. It is safe to call more than once and
// returns the error, if any, that stopped serving.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.lnMu.Lock()
		srv, stop, served := s.httpSrv, s.stopCtx, s.serveDone
		s.lnMu.Unlock()
		if stop != nil {
			stop()
		}
		if srv == nil {
			return
		}
		// http.Server.Shutdown would also wait for connections a client
		// opened but never used (up to 5s); only active ones matter here.
		deadline := time.Now().Add(shutdownGrace)
		for s.activeConns() > 0 && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		_ = srv.Close()
		<-served
		s.closeErr = s.serveErr
	})
	return s.closeErr
}

// trackConn is the http.Server's ConnState hook.
func (s *Server) trackConn(c net.Conn, state http.ConnState) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conns == nil {
		s.conns = map[net.Conn]http.ConnState{}
	}
	switch state {
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c)
	default:
		s.conns[c] = state
	}
}

// activeConns counts connections with a request being served.
func (s *Server) activeConns() int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	n := 0
	for _, st := range s.conns {
		if st == http.StateActive {
			n++
		}
	}
	return n
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Faults = maps.Clone(s.stats.Faults)
	st.InFlight, st.PeakInFlight = s.inFlight.Load(), s.peak.Load()
	return st
}

// Requests returns the most recent model requests, oldest first, at most
// Config.RecordLimit of them.
func (s *Server) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) < s.cfg.RecordLimit {
		return slices.Clone(s.ring)
	}
	return append(slices.Clone(s.ring[s.ringNext:]), s.ring[:s.ringNext]...)
}

// record keeps a finished model request and logs it.
func (s *Server) record(rec RecordedRequest) {
	rec.Duration = time.Since(rec.Start)
	if l := s.cfg.Logger; l != nil {
		l.Info("mock-lm request", "path", rec.Path, "seq", rec.Seq, "model", rec.Model, "status", rec.Status,
			"fault", string(rec.Fault), "rule", rec.Rule, "duration", rec.Duration.Round(time.Microsecond))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.RecordLimit < 0 {
		return
	}
	if len(s.ring) < s.cfg.RecordLimit {
		s.ring = append(s.ring, rec)
		return
	}
	s.ring[s.ringNext] = rec
	s.ringNext = (s.ringNext + 1) % len(s.ring)
}

func (s *Server) count(f func(st *Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
}

// ServeHTTP answers one request. See the package documentation for the
// endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Set directly to keep the spelling; header names match case-blind.
	w.Header()[SimulatorHeader] = []string{"true"}
	if s.cfg.Logger == nil {
		s.route(w, r)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	s.route(sw, r)
	if !sw.model { // model requests are logged by record, with more detail
		s.cfg.Logger.Info("mock-lm request", "method", r.Method, "path", r.URL.Path,
			"status", sw.status, "duration", time.Since(start).Round(time.Microsecond))
	}
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path == "/healthz" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.methodNotAllowed(w, r, http.MethodGet)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok (dspex LM simulator)\n")
		return
	}
	if !strings.HasPrefix(path, "/v1/") {
		s.notFound(w, r)
		return
	}
	if !s.authorized(r) {
		s.count(func(st *Stats) { st.Rejected++ })
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
			"incorrect API key provided to the dspex LM simulator")
		return
	}
	switch {
	case path == "/v1/chat/completions":
		if r.Method != http.MethodPost {
			s.methodNotAllowed(w, r, http.MethodPost)
			return
		}
		s.handleChat(w, r)
	case path == "/v1/embeddings":
		if r.Method != http.MethodPost {
			s.methodNotAllowed(w, r, http.MethodPost)
			return
		}
		s.handleEmbeddings(w, r)
	case path == "/v1/models" || strings.HasPrefix(path, "/v1/models/"):
		if r.Method != http.MethodGet {
			s.methodNotAllowed(w, r, http.MethodGet)
			return
		}
		s.handleModels(w, strings.TrimPrefix(strings.TrimPrefix(path, "/v1/models"), "/"))
	default:
		if !s.handleFineTune(w, r, path) {
			s.notFound(w, r)
		}
	}
}

func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.APIKey == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.APIKey)) == 1
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.count(func(st *Stats) { st.Rejected++ })
	writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url",
		fmt.Sprintf("unknown path %s %s (the dspex LM simulator serves /v1/chat/completions, /v1/embeddings, /v1/models, /v1/files and /v1/fine_tuning/jobs)", r.Method, r.URL.Path))
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	s.count(func(st *Stats) { st.Rejected++ })
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed",
		fmt.Sprintf("method %s is not allowed on %s (want %s)", r.Method, r.URL.Path, allow))
}

func (s *Server) handleModels(w http.ResponseWriter, id string) {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	if id != "" {
		writeJSON(w, http.StatusOK, model{id, "model", simulatedCreated, Owner})
		return
	}
	list := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list"}
	for _, m := range s.models {
		list.Data = append(list.Data, model{m, "model", simulatedCreated, Owner})
	}
	for _, m := range s.tunedModels() {
		list.Data = append(list.Data, model{m, "model", simulatedCreated, Owner})
	}
	writeJSON(w, http.StatusOK, list)
}

// enter admits a model request unless MaxInFlight are already running.
func (s *Server) enter(w http.ResponseWriter) bool {
	n := s.inFlight.Add(1)
	if n > int64(s.cfg.MaxInFlight) {
		s.inFlight.Add(-1)
		s.count(func(st *Stats) { st.Rejected++ })
		writeError(w, http.StatusServiceUnavailable, "server_error", "overloaded",
			fmt.Sprintf("the dspex LM simulator already has %d requests in flight (max in flight)", s.cfg.MaxInFlight))
		return false
	}
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	return true
}

func (s *Server) leave() { s.inFlight.Add(-1) }

// Random streams: each use of randomness draws from its own stream so that
// changing one setting (say, the latency) does not shift the others.
// Fault i uses streamFault+i; the dataset's draws use streamDataset.
const (
	streamLatency uint64 = iota + 1
	streamFault
	streamDataset uint64 = 1 << 40
)

// rng returns the RNG for one use of randomness by request seq.
func (s *Server) rng(seq, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(mix64(uint64(s.cfg.Seed)^mix64(stream)), seq))
}

// pickFault decides which fault, if any, request seq gets. Embeddings
// requests skip the faults that only make sense for completions.
func (s *Server) pickFault(seq uint64, chat bool) (Fault, bool) {
	for i, f := range s.cfg.Faults {
		if !chat && (f.Kind == FaultTruncated || f.Kind == FaultBadFields) {
			continue
		}
		u := s.rng(seq, streamFault+uint64(i)).Float64()
		if f.fires(seq, u) {
			return f, true
		}
	}
	return Fault{}, false
}

// pickRule returns the first script rule that matches and has uses left,
// counting the use, or -1.
func (s *Server) pickRule(msgs []Message) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.rules {
		r := &s.rules[i]
		if r.Times > 0 && s.ruleUses[i] >= r.Times {
			continue
		}
		if r.matches(msgs) {
			s.ruleUses[i]++
			return i
		}
	}
	return -1
}

// errServerClosed ends waits when the server closes.
var errServerClosed = errors.New("lmtest: server closed while the request waited")

// wait sleeps for d unless the client leaves or the server closes.
func (s *Server) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return errServerClosed
	}
}

// hang waits until the client leaves or the server closes.
func (s *Server) hang(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return errServerClosed
	}
}

// delay applies the configured latency and any hang fault. It reports
// false when the request is over: the client left (nothing to write), or
// the server closed (503 written).
func (s *Server) delay(w http.ResponseWriter, r *http.Request, seq uint64, fault Fault, faulted bool, rec *RecordedRequest) bool {
	// Latency counts from the request's arrival: the simulator's own work
	// (reading and parsing the request) is part of it, as it would be for a
	// real server, not added to it.
	err := s.wait(r.Context(), s.cfg.Latency.sample(s.rng(seq, streamLatency))-time.Since(rec.Start))
	if err == nil && faulted && fault.Kind == FaultHang {
		s.countFault(fault.Kind)
		rec.Fault = fault.Kind
		err = s.hang(r.Context())
	}
	switch {
	case err == nil:
		return true
	case errors.Is(err, errServerClosed):
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusServiceUnavailable, "server_error", "simulator_closed",
			"the dspex LM simulator is shutting down")
		rec.Status = http.StatusServiceUnavailable
	}
	return false
}

// injectFault numbers model request rec, draws its fault (chat: from
// every kind; else not those that spoil a completion) and waits out its
// latency, then answers the faults that replace a response: error
// statuses, a reset and malformed output (as a stream when stream). It
// reports false when the request is over: answered, or its client gone.
// Else it returns the fault, counted and recorded, that spoils the
// response (FaultTruncated or FaultBadFields), or "" for none.
//
// When the request will be answered, prepare (if not nil) runs before the
// latency wait with that spoiling fault, so the answer is ready when the
// wait ends: the simulated latency then covers the simulator's own work,
// and a burst of requests does not all compute at the same instant.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request, rec *RecordedRequest, chat, stream bool, prepare func(spoil FaultKind)) (spoil FaultKind, ok bool) {
	seq := s.seq.Add(1)
	rec.Seq = seq
	fault, faulted := s.pickFault(seq, chat)
	if faulted && (fault.Kind == FaultTruncated || fault.Kind == FaultBadFields) {
		spoil = fault.Kind
	}
	if prepare != nil && (!faulted || spoil != "") {
		prepare(spoil)
	}
	if !s.delay(w, r, seq, fault, faulted, rec) {
		return "", false
	}
	if !faulted {
		return "", true
	}
	if s.failWith(w, fault, rec) {
		return "", false
	}
	s.countFault(fault.Kind)
	rec.Fault = fault.Kind
	if fault.Kind == FaultMalformed {
		rec.Status = http.StatusOK
		writeMalformed(w, stream)
		return "", false
	}
	return fault.Kind, true
}

func (s *Server) countFault(k FaultKind) {
	s.count(func(st *Stats) { st.Faults[k]++ })
}

// failWith writes an error-status fault (429, 500, 502, 503) or drops the
// connection (reset). It reports whether the fault was of those kinds.
func (s *Server) failWith(w http.ResponseWriter, f Fault, rec *RecordedRequest) bool {
	var status int
	var typ, code, msg string
	switch f.Kind {
	case FaultRateLimit:
		status, typ, code, msg = http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded",
			"simulated rate limit (dspex LM simulator fault 429)"
	case FaultServerError:
		status, typ, code, msg = http.StatusInternalServerError, "server_error", "internal_error",
			"simulated server error (dspex LM simulator fault 500)"
	case FaultBadGateway:
		status, typ, code, msg = http.StatusBadGateway, "server_error", "bad_gateway",
			"simulated bad gateway (dspex LM simulator fault 502)"
	case FaultUnavailable:
		status, typ, code, msg = http.StatusServiceUnavailable, "server_error", "overloaded",
			"simulated overload (dspex LM simulator fault 503)"
	case FaultReset:
		s.countFault(f.Kind)
		rec.Fault = f.Kind
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
			return true
		}
		// No connection to drop (HTTP/2, or a recorder in tests).
		status, typ, code, msg = http.StatusBadGateway, "server_error", "connection_reset",
			"simulated connection reset (dspex LM simulator fault reset)"
		writeError(w, status, typ, code, msg)
		rec.Status = status
		return true
	default:
		return false
	}
	s.countFault(f.Kind)
	rec.Fault, rec.Status = f.Kind, status
	if ra := f.retryAfterHeader(); ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	writeError(w, status, typ, code, msg)
	return true
}

// statusWriter remembers the status written, for logging.
type statusWriter struct {
	http.ResponseWriter
	status int
	model  bool // a model request handler ran (and logs itself)
}

// markModel tells a statusWriter that a model request handler took over.
func markModel(w http.ResponseWriter) {
	if sw, ok := w.(*statusWriter); ok {
		sw.model = true
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// mix64 is SplitMix64's finalizer: a cheap, well-spread hash of x.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
