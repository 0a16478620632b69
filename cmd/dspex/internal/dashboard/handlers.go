package dashboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/dspex/dspex/core/trace"
)

func parseTemplates() (*template.Template, error) {
	sub, err := fs.Sub(assets, "assets/templates")
	if err != nil {
		return nil, err
	}
	t, err := template.New("").Funcs(template.FuncMap{
		"runURL": runURL,
		"short":  short,
		"add":    func(a, b int) int { return a + b },
	}).ParseFS(sub, "*.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: templates: %w", err)
	}
	return t, nil
}

// render executes a template into a buffer first, so that a failure
// becomes a 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "dashboard: render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, trace.ErrNotFound), errors.Is(err, trace.ErrNoDatabase):
		code = http.StatusNotFound
	case errors.Is(err, trace.ErrAmbiguous):
		code = http.StatusBadRequest
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = s.pages.ExecuteTemplate(w, "error.html", map[string]any{"Code": code, "Message": err.Error()})
}

func (s *Server) handleRuns(w http.ResponseWriter, r *http.Request) {
	v, err := s.loadRuns(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	s.render(w, "runs.html", v)
}

func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	v, err := s.loadRun(r.Context(), r.PathValue("id"))
	if errors.Is(err, trace.ErrNotFound) || errors.Is(err, trace.ErrNoDatabase) {
		// A run about to start (a page opened as its command starts):
		// the page waits for it and fills in when it appears.
		var buf bytes.Buffer
		id := r.PathValue("id")
		if err := s.pages.ExecuteTemplate(&buf, "waiting.html", map[string]any{"ID": id, "Short": short(id), "Message": err.Error()}); err != nil {
			s.fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write(buf.Bytes())
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	if v.ID != r.PathValue("id") { // a prefix: go to the full id
		http.Redirect(w, r, runURL(v.ID), http.StatusSeeOther)
		return
	}
	s.render(w, "run.html", v)
}

type callPage struct {
	RunID, Short string
	Call         trace.LMCall
	History      string
	Params       string
	Finish       string
}

// handleCall shows one LM call as DSPy's inspect_history does: every
// message, then the response.
func (s *Server) handleCall(w http.ResponseWriter, r *http.Request) {
	rd, err := s.openReader(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	id, span := r.PathValue("id"), r.PathValue("span")
	calls, err := rd.LMCalls(r.Context(), trace.LMCallQuery{RunID: id, SpanID: span, Limit: 1})
	if err != nil {
		s.fail(w, err)
		return
	}
	if len(calls) == 0 {
		s.fail(w, fmt.Errorf("%w: no LM call %q in run %q", trace.ErrNotFound, span, id))
		return
	}
	c := calls[0]
	var b strings.Builder
	for _, m := range c.Messages {
		b.WriteString(strings.ToUpper(m.Role[:min(1, len(m.Role))]) + m.Role[min(1, len(m.Role)):] + " message:\n\n")
		b.WriteString(m.Content + "\n\n")
	}
	for i, comp := range c.Completions {
		if len(c.Completions) > 1 {
			fmt.Fprintf(&b, "Response %d:\n\n", i+1)
		} else {
			b.WriteString("Response:\n\n")
		}
		b.WriteString(comp + "\n\n")
	}
	page := callPage{RunID: id, Short: short(id), Call: c, History: strings.TrimRight(b.String(), "\n"),
		Params: string(c.Params), Finish: strings.Join(c.FinishReasons, ", ")}
	s.render(w, "call.html", page)
}

type diffPage struct {
	RunID, Short string
	A, B         *trialView
	Lines        []diffLine
	Candidates   []trialView
	Changed      bool
}

// handleDiff diffs two candidates' prompts (instructions and demos).
func (s *Server) handleDiff(w http.ResponseWriter, r *http.Request) {
	v, err := s.loadRun(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	page := diffPage{RunID: v.ID, Short: v.Short, Candidates: v.CandidatesForDF}
	find := func(key string) *trialView {
		n := 0
		if _, err := fmt.Sscan(key, &n); err != nil {
			return nil
		}
		for i := range v.CandidatesForDF {
			if v.CandidatesForDF[i].N == n {
				return &v.CandidatesForDF[i]
			}
		}
		return nil
	}
	q := r.URL.Query()
	page.A, page.B = find(q.Get("a")), find(q.Get("b"))
	if page.A == nil && len(v.CandidatesForDF) > 0 {
		page.A = &v.CandidatesForDF[0]
	}
	if page.B == nil && v.Best != nil {
		page.B = find(fmt.Sprint(v.Best.N))
	}
	if page.A != nil && page.B != nil {
		page.Lines = lineDiff(promptText(page.A.Preds), promptText(page.B.Preds))
		for _, l := range page.Lines {
			if l.Op != " " {
				page.Changed = true
			}
		}
	}
	s.render(w, "diff.html", page)
}

// stream sends a page's live part as server-sent events: an "update"
// with the part's HTML whenever what it shows changed, looking every
// Poll; when the dashboard closes, one last update and an "end".
func (s *Server) stream(w http.ResponseWriter, r *http.Request, part string, load func(ctx context.Context) (fingerprint string, data func() (any, error), err error)) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	select {
	case <-s.closing:
		http.Error(w, "the dashboard is closing", http.StatusServiceUnavailable)
		return
	default:
	}
	s.streams.Add(1)
	defer s.streams.Done()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	fl.Flush()
	ctx := r.Context()
	last := ""
	send := func(force bool) bool {
		fp, lazy, err := load(ctx)
		if err == nil && fp == last && !force {
			return true
		}
		var data any
		if err == nil {
			data, err = lazy()
		}
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			fp, data = "error: "+err.Error(), nil
		}
		last = fp
		var buf bytes.Buffer
		if data == nil {
			buf.WriteString(`<p class="error">` + template.HTMLEscapeString(fp) + `</p>`)
		} else if err := s.pages.ExecuteTemplate(&buf, part, data); err != nil {
			buf.Reset()
			buf.WriteString(`<p class="error">` + template.HTMLEscapeString(err.Error()) + `</p>`)
		}
		writeEvent(w, "update", buf.String())
		fl.Flush()
		return true
	}
	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	// Each page renders itself when loaded; the stream sends only what
	// changes after that, starting with the state as of now.
	if !send(false) {
		return
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.closing:
			send(false)
			writeEvent(w, "end", "the process serving this dashboard has ended")
			fl.Flush()
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
			fl.Flush()
		case <-tick.C:
			if !send(false) {
				return
			}
		}
	}
}

// writeEvent writes one server-sent event; data's lines become data:
// lines (a stored string cannot end the event early: it holds no bare
// CR or LF that is not split here).
func writeEvent(w http.ResponseWriter, name, data string) {
	var b strings.Builder
	b.WriteString("event: " + name + "\n")
	data = strings.ReplaceAll(strings.ReplaceAll(data, "\r\n", "\n"), "\r", "\n")
	for _, line := range strings.Split(data, "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	_, _ = w.Write([]byte(b.String()))
}

func (s *Server) handleRunsStream(w http.ResponseWriter, r *http.Request) {
	s.stream(w, r, "runs-live", func(ctx context.Context) (string, func() (any, error), error) {
		v, err := s.loadRuns(ctx)
		if err != nil {
			return "", nil, err
		}
		var fp strings.Builder
		fp.WriteString(v.Note)
		for _, run := range v.Runs {
			fmt.Fprintf(&fp, "|%s %s %s %s %s %d", run.ID, run.State, run.Duration, run.Score, run.Tokens, run.Calls)
		}
		return fp.String(), func() (any, error) { return v, nil }, nil
	})
}

func (s *Server) handleRunStream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.stream(w, r, "run-live", func(ctx context.Context) (string, func() (any, error), error) {
		rd, err := s.openReader(ctx)
		if err != nil {
			return "", nil, err
		}
		// A cheap look first: the run's row and the bus's counter.
		run, err := rd.Run(ctx, id)
		if err != nil {
			return "", nil, err
		}
		_, _, version := s.live.get(run.ID)
		fp := fmt.Sprintf("%d %s %d %s %d", run.UpdatedAt.UnixNano(), run.State(time.Now()), run.Recorded.Calls, run.Status, version)
		return fp, func() (any, error) { return s.loadRun(ctx, id) }, nil
	})
}
