// Package dashboard is the live dashboard of `dspex dashboard` and of
// `--dashboard ADDR` on eval, optimize and serve: a read-only web page of
// the runs in a trace database, each run's progress, trials, candidates,
// LM usage, errors, plugin and breaker health, updated live by server-sent
// events.
//
// Everything a page shows is read from the trace store (core/trace), so a
// run in another process is followed by tailing the SQLite file; a
// dashboard inside the running process also subscribes to its event bus,
// for what the store does not keep (progress) and to notice changes at
// once. Pages are rendered by html/template, which escapes every string
// (LM output is untrusted); charts are SVG drawn here; the page's one
// script and style sheet are embedded in the binary, so it works with no
// network. The server answers GET and HEAD only, sends a
// Content-Security-Policy that allows no inline script, binds to loopback
// unless told otherwise, and refuses a non-loopback address without a
// token. docs/dashboard.md describes it.
package dashboard

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/trace"
)

//go:embed assets
var assets embed.FS

// DefaultAddr is where the dashboard listens unless told otherwise.
const DefaultAddr = "127.0.0.1:8090"

// DefaultPoll is how often an open page checks the trace store for changes.
const DefaultPoll = 500 * time.Millisecond

// CSP is the Content-Security-Policy of every answer: scripts and styles
// only from the dashboard itself (no inline script, no inline style), no
// plugins, no frames, no outside connections.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// TokenCookie is the cookie a browser keeps the token in after it opened a
// page with ?token=.
const TokenCookie = "dspex_dashboard_token"

// ErrTokenRequired is returned by New for a non-loopback address without a
// token.
var ErrTokenRequired = errors.New("dashboard: a non-loopback address needs a token")

// Config configures a dashboard.
type Config struct {
	// DB is the trace database file. It need not exist yet: pages say so
	// until a run creates it.
	DB string
	// Addr is the host:port to listen on. Default DefaultAddr; port 0
	// picks a free port.
	Addr string
	// Token, when set, must come with every request: as ?token= (which
	// sets a cookie and redirects), the cookie, or an
	// "Authorization: Bearer" header. Required for a non-loopback Addr.
	Token string
	// Bus, when set, is the event bus of the process the dashboard runs
	// in: its runs' progress shows live.
	Bus *event.Bus
	// Poll is how often open pages look for changes in the trace store.
	// Default DefaultPoll.
	Poll time.Duration
	// ErrorLog receives the HTTP server's errors. Default: discarded.
	ErrorLog *log.Logger
}

// Server is a dashboard. Create it with New, start it with Listen and
// Serve (or use Handler), stop it with Close.
type Server struct {
	cfg   Config
	pages *template.Template
	live  *liveState
	sub   *event.Subscription

	mu     sync.Mutex
	reader *trace.Reader
	tried  time.Time // the last look for a newer schema
	ln     net.Listener
	srv    *http.Server

	closing chan struct{} // closed by Close: streams send their last update and end
	once    sync.Once
	streams sync.WaitGroup
}

// New checks cfg and prepares a dashboard. A non-loopback Addr without a
// Token is refused (ErrTokenRequired); so is a trace database that exists
// but is not one.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.DB == "" {
		return nil, errors.New("dashboard: no trace database given")
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("dashboard: address %q: %w", cfg.Addr, err)
	}
	if !loopback(host) && cfg.Token == "" {
		return nil, fmt.Errorf("%w: %s listens beyond this machine; pass a token (--token), or listen on 127.0.0.1", ErrTokenRequired, cfg.Addr)
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, pages: pages, live: newLiveState(), closing: make(chan struct{})}
	if _, err := s.openReader(context.Background()); err != nil && !errors.Is(err, trace.ErrNoDatabase) {
		return nil, err
	}
	if cfg.Bus != nil {
		sub, err := cfg.Bus.Subscribe(event.SubscribeOptions{
			Name: "dashboard", Policy: event.DropOldest, Buffer: 4096,
			Kinds: []event.Kind{event.Progress, event.RunStart, event.RunEnd, event.OptimizerTrial, event.EvalExample,
				event.PluginStart, event.PluginExit, event.PluginRestart, event.PluginGiveUp, event.BreakerState},
		}, s.live.handle)
		if err != nil {
			return nil, fmt.Errorf("dashboard: %w", err)
		}
		s.sub = sub
	}
	return s, nil
}

// loopback reports whether host is a loopback name or address.
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// openReader returns the trace reader, opening it when the file has
// appeared or was migrated to a newer schema since.
func (s *Server) openReader(ctx context.Context) (*trace.Reader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reader != nil && (s.reader.SchemaVersion() >= trace.SchemaVersion || time.Since(s.tried) < time.Second) {
		return s.reader, nil
	}
	s.tried = time.Now()
	r, err := trace.OpenReader(ctx, s.cfg.DB)
	if err != nil {
		if s.reader != nil {
			return s.reader, nil
		}
		return nil, err
	}
	if s.reader != nil {
		if r.SchemaVersion() <= s.reader.SchemaVersion() {
			r.Close()
			return s.reader, nil
		}
		s.reader.Close()
	}
	s.reader = r
	return r, nil
}

// Listen binds the address and returns the dashboard's URL.
func (s *Server) Listen() (string, error) {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return "", fmt.Errorf("dashboard: listen on %s: %w", s.cfg.Addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return "http://" + ln.Addr().String() + "/", nil
}

// Serve answers requests on the listener Listen bound until Close, and
// returns nil then.
func (s *Server) Serve() error {
	s.mu.Lock()
	ln := s.ln
	if ln == nil {
		s.mu.Unlock()
		return errors.New("dashboard: Serve before Listen")
	}
	errLog := s.cfg.ErrorLog
	if errLog == nil {
		errLog = log.New(io.Discard, "", 0)
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	srv := s.srv
	s.mu.Unlock()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close ends the dashboard: every open page gets one last update (so
// that it shows how the run ended) and the end of its stream, then the
// server stops. Call it after the trace store is closed.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.closing) })
	done := make(chan struct{})
	go func() { s.streams.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	if s.sub != nil {
		s.sub.Close()
	}
	s.mu.Lock()
	srv, ln, r := s.srv, s.ln, s.reader
	s.reader = nil
	s.mu.Unlock()
	var err error
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = srv.Shutdown(ctx)
		cancel()
	} else if ln != nil {
		err = ln.Close()
	}
	if r != nil {
		r.Close()
	}
	return err
}

// Handler is the dashboard's HTTP handler, with its security checks.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets/static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", s.handleRuns)
	mux.HandleFunc("GET /events", s.handleRunsStream)
	mux.HandleFunc("GET /runs/{id}", s.handleRun)
	mux.HandleFunc("GET /runs/{id}/events", s.handleRunStream)
	mux.HandleFunc("GET /runs/{id}/calls/{span}", s.handleCall)
	mux.HandleFunc("GET /runs/{id}/diff", s.handleDiff)
	return s.guard(mux)
}

// guard sets the security headers and enforces read-only access, the
// Host header of a loopback bind, and the token.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "the dashboard is read-only: GET and HEAD only", http.StatusMethodNotAllowed)
			return
		}
		// A page of another site must not reach a loopback dashboard
		// through a name that resolves to 127.0.0.1 (DNS rebinding).
		if s.cfg.Token == "" {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			if !loopback(strings.Trim(host, "[]")) {
				http.Error(w, "the dashboard answers loopback host names only", http.StatusForbidden)
				return
			}
		}
		if s.cfg.Token != "" && !s.authorized(w, r) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized checks the token; a correct ?token= sets the cookie and
// redirects to the URL without it.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	same := func(got string) bool {
		return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1
	}
	if q := r.URL.Query().Get("token"); q != "" {
		if !same(q) {
			http.Error(w, "wrong token", http.StatusUnauthorized)
			return false
		}
		http.SetCookie(w, &http.Cookie{Name: TokenCookie, Value: q, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		u := *r.URL
		v := u.Query()
		v.Del("token")
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
		return false
	}
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && same(auth) {
		return true
	}
	if c, err := r.Cookie(TokenCookie); err == nil && same(c.Value) {
		return true
	}
	http.Error(w, "this dashboard needs its token: open it with ?token=TOKEN", http.StatusUnauthorized)
	return false
}

// runURL is the path of a run's page.
func runURL(id string) string { return "/runs/" + url.PathEscape(id) }
