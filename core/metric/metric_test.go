package metric

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/example"
)

func gold(v any) example.Example { return example.New(map[string]any{"answer": v}) }

func predOf(fields map[string]any) *example.Prediction { return example.NewPrediction(fields) }

func score(t *testing.T, m Metric, ex example.Example, pred *example.Prediction) float64 {
	t.Helper()
	r, err := m.Score(context.Background(), ex, pred)
	if err != nil {
		t.Fatalf("%s: %v", m.Name(), err)
	}
	return r.Score
}

// Expected values computed with DSPy 3.4.1: EM(pred, [gold]), F1(pred,
// [gold]) and _passage_match([pred], [gold]) from dspy.evaluate.metrics.
func TestTextMetricsMatchDSPy(t *testing.T) {
	cases := []struct {
		pred, gold    string
		em, f1, match float64
	}{
		{"Paris", "paris", 1, 1, 1},
		{"The Eiffel Tower", "Eiffel Tower", 1, 1, 1},
		{"Eiffel Tower is in Paris", "Paris", 0, 0.33333333333333337, 1},
		{"the cat sat on the mat", "a cat sat on a mat", 1, 1, 1},
		{"cat cat dog", "cat dog dog", 0, 0.6666666666666666, 0},
		{"", "", 1, 0, 1},
		{"", "x", 0, 0, 0},
		{"1,000 people", "1000 people", 1, 1, 1},
		{"café", "cafe", 0, 0, 0},
		{"Café au lait", "CAFÉ AU LAIT!", 1, 1, 1},
		{"New York City", "new york", 0, 0.8, 1},
		{"an apple a day", "apple day", 1, 1, 1},
		{"U.S.A.", "usa", 1, 1, 1},
		{"rock-n-roll", "rocknroll", 1, 1, 1},
		{"Hello,   world\t\n!", "hello world", 1, 1, 1},
		{"42", "forty-two", 0, 0, 0},
		{"the the the", "the", 1, 0, 1},
		{"Ångström units", "angstrom units", 0, 0.5, 0},
		{"x_y z", "x y z", 0, 0.4, 0},
		{"one two three four", "four three two one", 0, 1, 0},
	}
	for _, c := range cases {
		t.Run(c.pred+"|"+c.gold, func(t *testing.T) {
			ex, pred := gold(c.gold), predOf(map[string]any{"answer": c.pred})
			for _, m := range []struct {
				metric Metric
				want   float64
			}{{ExactMatch("answer"), c.em}, {F1("answer"), c.f1}, {Contains("answer"), c.match}} {
				if got := score(t, m.metric, ex, pred); got != m.want {
					t.Errorf("%s = %v, want %v", m.metric.Name(), got, m.want)
				}
			}
			pm := PassageMatch("context", "answer")
			if got := score(t, pm, ex, predOf(map[string]any{"context": []string{c.pred}})); got != c.match {
				t.Errorf("passage_match = %v, want %v", got, c.match)
			}
		})
	}
}

// Several gold answers: the best one counts (DSPy: F1("Eiffel Tower in
// Paris", ["Louvre", "Paris France", "Eiffel"]) == 0.4, EM("the louvre",
// ["Eiffel", "Louvre"]) is True).
func TestGoldLists(t *testing.T) {
	cases := []struct {
		name   string
		metric Metric
		pred   string
		gold   any
		want   float64
	}{
		{"f1 best of list", F1("answer"), "Eiffel Tower in Paris", []string{"Louvre", "Paris France", "Eiffel"}, 0.4},
		{"em any of list", ExactMatch("answer"), "the louvre", []any{"Eiffel", "Louvre"}, 1},
		{"em none of list", ExactMatch("answer"), "Orsay", []string{"Eiffel", "Louvre"}, 0},
		{"number gold as str", ExactMatch("answer"), "4", 4, 1},
		{"number list items", ExactMatch("answer"), "4.5", []any{int64(3), 4.5}, 1},
		{"bool gold as Python writes it", ExactMatch("answer"), "true", true, 1},
		{"contains", Contains("answer"), "It is Paris, France.", []string{"London", "paris"}, 1},
		{"contains needs whole words", Contains("answer"), "Parisian cafés", "paris", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := score(t, c.metric, gold(c.gold), predOf(map[string]any{"answer": c.pred})); got != c.want {
				t.Errorf("score = %v, want %v", got, c.want)
			}
		})
	}
}

// DSPy: _passage_match(["The Eiffel Tower is in Paris.", "Nothing here"],
// ["eiffel tower"]) True; (["Paris1889 expo"], ["paris"]) False; (["x"],
// ["the"]) True; (["café-bar"], ["cafe bar"]) False.
func TestPassageMatch(t *testing.T) {
	cases := []struct {
		name     string
		passages any
		answer   any
		want     float64
	}{
		{"second passage irrelevant", []string{"The Eiffel Tower is in Paris.", "Nothing here"}, "eiffel tower", 1},
		{"answer later in list", []any{"Nothing here", "Built in Paris."}, []string{"Rome", "Paris"}, 1},
		{"token boundary", []string{"Paris1889 expo"}, "paris", 0},
		{"empty answer matches", []string{"x"}, "the", 1},
		{"hyphen joins words", []string{"café-bar"}, "cafe bar", 0},
		{"one string is one passage", "The Louvre, in Paris", "louvre", 1},
		{"no passages", []string{}, "paris", 0},
	}
	m := PassageMatch("context", "answer")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := score(t, m, gold(c.answer), predOf(map[string]any{"context": c.passages})); got != c.want {
				t.Errorf("score = %v, want %v", got, c.want)
			}
		})
	}
}

func TestFieldErrors(t *testing.T) {
	cases := []struct {
		name    string
		metric  Metric
		ex      example.Example
		pred    *example.Prediction
		missing bool   // errors.Is(err, ErrMissingField)
		want    string // in the message
	}{
		{"prediction lacks field", ExactMatch("answer"), gold("x"), predOf(map[string]any{"other": "x"}), true, `the prediction has no field "answer"`},
		{"example lacks gold", F1("answer"), example.New(map[string]any{"q": "x"}), predOf(map[string]any{"answer": "x"}), true, `the example has no field "answer"`},
		{"no passages field", PassageMatch("context", "answer"), gold("x"), predOf(map[string]any{"answer": "x"}), true, `the prediction has no field "context"`},
		{"empty gold list", ExactMatch("answer"), gold([]string{}), predOf(map[string]any{"answer": "x"}), false, `field "answer" is an empty list`},
		{"gold object", Contains("answer"), gold(map[string]any{"a": 1}), predOf(map[string]any{"answer": "x"}), false, "is a object, not a string"},
		{"gold null", ExactMatch("answer"), gold(nil), predOf(map[string]any{"answer": "x"}), false, "is a null"},
		{"nil prediction", ExactMatch("answer"), gold("x"), nil, false, "no prediction"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.metric.Score(context.Background(), c.ex, c.pred)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrMissingField) != c.missing {
				t.Errorf("errors.Is(ErrMissingField) = %v, want %v (%v)", !c.missing, c.missing, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestByName(t *testing.T) {
	for _, name := range []string{"exact_match", "f1", "contains", "passage_match", " F1 "} {
		m, err := ByName(name, "")
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if m.Name() != strings.ToLower(strings.TrimSpace(name)) {
			t.Errorf("%q: Name() = %q", name, m.Name())
		}
	}
	m, _ := ByName("exact_match", "label")
	if got := score(t, m, example.New(map[string]any{"label": "pos"}), predOf(map[string]any{"label": "POS"})); got != 1 {
		t.Errorf("field label: score %v", got)
	}
	_, err := ByName("bleu", "answer")
	if !errors.Is(err, ErrUnknownMetric) || !strings.Contains(err.Error(), "contains, exact_match, f1, passage_match") {
		t.Errorf("unknown metric: %v", err)
	}
}

func TestFromFunc(t *testing.T) {
	m := FromFunc("len", func(_ context.Context, _ example.Example, p *example.Prediction) (Result, error) {
		return Result{Score: float64(len(p.String("answer"))), Feedback: "counted"}, nil
	})
	r, err := m.Score(context.Background(), example.Example{}, predOf(map[string]any{"answer": "abc"}))
	if err != nil || r.Score != 3 || r.Feedback != "counted" || m.Name() != "len" {
		t.Errorf("got %+v, %v, name %q", r, err, m.Name())
	}
	if _, err := FromFunc("nil", nil).Score(context.Background(), example.Example{}, nil); err == nil {
		t.Error("nil func: no error")
	}
}

func TestDPRTokens(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"Hello, World!", []string{"hello", ",", "world", "!"}},
		{"  a\tb\n", []string{"a", "b"}},
		{"café", []string{"cafe\u0301"}},
		{"x\u200by", []string{"x", "y"}}, // zero-width space is Cf: dropped
		{"", nil},
	}
	for _, c := range cases {
		got := dprTokens(c.in)
		if strings.Join(got, "|") != strings.Join(c.want, "|") || len(got) != len(c.want) {
			t.Errorf("dprTokens(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
