package dashboard

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/trace"
)

func TestLineDiff(t *testing.T) {
	got := lineDiff("a\nb\nc", "a\nx\nc\nd")
	var b strings.Builder
	for _, l := range got {
		b.WriteString(l.Op + l.Text + "|")
	}
	if want := " a|-b|+x| c|+d|"; b.String() != want {
		t.Errorf("diff %q; want %q", b.String(), want)
	}
	for _, l := range lineDiff("same\ntext", "same\ntext") {
		if l.Op != " " {
			t.Errorf("identical texts differ: %+v", l)
		}
	}
}

func TestCandidatePredictors(t *testing.T) {
	// A program that is one predictor saves its state at the top level;
	// one with several, per predictor.
	flat := `{"id": "c1", "predictors": {"self": {"instructions": "Short.", "demos": 1}},
		"state": {"demos": [{"question": "q?", "answer": "a"}], "signature": {"instructions": "Answer well."}, "lm": null, "traces": [], "train": []}}`
	nested := `{"id": "c2", "predictors": {"a": {}, "b": {}},
		"state": {"b": {"demos": [], "signature": {"instructions": "Second."}}, "a": {"demos": [{"x": 1}], "signature": {"instructions": "First."}}, "metadata": {"dependency_versions": {}}}}`
	summary := `{"id": "c3", "predictors": {"p": {"instructions": "From the summary.", "demos": 3}}}`
	for _, tc := range []struct {
		rec  string
		want string
	}{
		{flat, "self:Answer well.:1:answer=a,question=q?;"},
		{nested, "a:First.:1:x=1;b:Second.:0:;"},
		{summary, "p:From the summary.:3:;"},
	} {
		var rec candidateRecord
		if err := json.Unmarshal([]byte(tc.rec), &rec); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, p := range rec.predictors() {
			b.WriteString(p.Name + ":" + p.Instructions + ":" + strconv.Itoa(p.NDemos) + ":")
			for i, d := range p.Demos {
				for j, f := range d.Fields {
					if i > 0 || j > 0 {
						b.WriteString(",")
					}
					b.WriteString(f.Name + "=" + f.Value)
				}
			}
			b.WriteString(";")
		}
		if b.String() != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.rec[:12], b.String(), tc.want)
		}
	}
}

// hostileView is a run view with s in every string an LM or a user can
// put there.
func hostileView(s string) *runView {
	pred := []predictorView{{Name: s, Instructions: s, NDemos: 1, Demos: []demoView{{Fields: []field{{Name: s, Value: s}}}}}}
	trials := []trialView{{N: 1, Trial: 1, ID: s, Score: 0.5, ScoreText: "0.50", Params: s, Error: s, Preds: pred, Best: true},
		{N: 2, Trial: 2, ID: s, Score: 0.25, ScoreText: "0.25", Minibatch: true, Preds: pred}}
	v := &runView{ID: s, Short: s, Kind: s, Program: s, State: s, Error: s, Started: s, Duration: s, Updated: s, Process: s,
		HasProgress: true, ProgressLabel: s, ProgressDone: 1, ProgTotal: 2, ProgressPct: "50%",
		TrialCount: 2, BestScore: "0.50", Trials: trials, Best: &trials[0], CandidatesForDF: trials,
		DemoSets:     []proposalView{{Predictor: s, Source: s, Demos: pred[0].Demos}},
		Instructions: []proposalView{{Predictor: s, Source: s, Text: s}},
		Eval:         []evalView{{Index: 1, Example: s, Prediction: s, Note: s, Score: "1.00"}},
		Errors:       []errorView{{Time: s, Kind: s, Message: s, Raw: s, Call: s}}, ErrorCount: 1,
		Plugins:     []pluginView{{Name: s, State: s, Reason: s, Exit: s}},
		Breakers:    []breakerView{{Name: s, State: s, Changes: []string{s}}},
		RecentCalls: []callView{{SpanID: s, Model: s, Latency: s, Tokens: s, Error: s}},
	}
	v.ScoreChart = scoreChart(trials)
	v.LatencyChart = latencyChart([]float64{1, 2, 3})
	v.TokenChart = tokenChart([]trace.LMCall{{CreatedAt: time.Unix(0, 0), TotalTokens: 3}, {CreatedAt: time.Unix(2, 0), TotalTokens: 4}})
	return v
}

// FuzzRunPageEscapes: whatever a stored string holds, the run page (and a
// candidate record read from the store) shows it as text — the marker
// element never appears as markup — and reading it never panics.
func FuzzRunPageEscapes(f *testing.F) {
	for _, s := range []string{"", "plain", `"><x-pwn onerror=alert(1)>`, `javascript:alert(1)`, `</pre><x-pwn>`, `{{.}}`,
		`<script>x</script>`, `]]><x-pwn/>`, "line\nbreak\r\n<x-pwn>"} {
		f.Add(s, []byte(`{"id": "`+s+`", "state": {"signature": {"instructions": "i"}}}`))
	}
	pages, err := parseTemplates()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string, record []byte) {
		var rec candidateRecord
		if json.Unmarshal(record, &rec) == nil {
			_ = rec.predictors()
		}
		payload := "<x-pwn " + s + ">"
		var out bytes.Buffer
		if err := pages.ExecuteTemplate(&out, "run.html", hostileView(payload)); err != nil {
			t.Fatalf("render: %v", err)
		}
		if strings.Contains(out.String(), "<x-pwn") {
			t.Fatalf("the payload reached the page as markup:\n%s", out.String())
		}
	})
}

func TestRunPageEscapes(t *testing.T) {
	pages, err := parseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := pages.ExecuteTemplate(&out, "run.html", hostileView(`<x-pwn onerror="alert(1)">`)); err != nil {
		t.Fatal(err)
	}
	page := out.String()
	if strings.Contains(page, "<x-pwn") || !strings.Contains(page, "&lt;x-pwn") {
		t.Errorf("the payload is not escaped on the page")
	}
	// A link built from a stored value never becomes a javascript: URL.
	out.Reset()
	if err := pages.ExecuteTemplate(&out, "run.html", hostileView("javascript:alert(1)")); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), `href="javascript:`) {
		t.Errorf("a javascript: URL became a link")
	}
}
