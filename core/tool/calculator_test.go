package tool

import (
	"context"
	"strings"
	"testing"
)

func TestEvalArithmetic(t *testing.T) {
	cases := []struct {
		expr string
		want float64
		err  string
	}{
		{"1 + 2 * 3", 7, ""}, {"(1 + 2) * 3", 9, ""}, {"2 ^ 3 ^ 2", 512, ""}, {"2 ** 10", 1024, ""},
		{"-3 + -(-2)", -1, ""}, {"10 / 4", 2.5, ""}, {"7 % 4", 3, ""}, {"1e3 + 0.5", 1000.5, ""},
		{"sqrt(16) + max(2, 3) - abs(-1)", 6, ""}, {"round(2.5) + floor(1.9) + ceil(1.1)", 6, ""},
		{"1_000 * 2", 2000, ""}, {"2 * pi", 6.283185307179586, ""},
		{"1 / 0", 0, "division by zero"}, {"2 +", 0, "expected a number"}, {"(1 + 2", 0, `expected ")"`},
		{"foo(1)", 0, `unknown name "foo"`}, {"1 2", 0, "unexpected"}, {"sqrt(-1)", 0, "negative"},
		{"min(1)", 0, "takes 2 arguments"}, {"10 ^ 400", 0, "not a finite number"}, {"", 0, "expected a number"},
		{strings.Repeat("(", 100) + "1" + strings.Repeat(")", 100), 0, "nested too deeply"},
	}
	for _, c := range cases {
		v, err := EvalArithmetic(c.expr)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err = %v, want %q", c.expr, err, c.err)
			}
			continue
		}
		if err != nil || v != c.want {
			t.Errorf("%q = %v, %v; want %v", c.expr, v, err, c.want)
		}
	}
}

func TestCalculatorTool(t *testing.T) {
	out, err := Calculator().Call(context.Background(), map[string]any{"expression": "6 * 7"})
	if err != nil || out != "42" {
		t.Errorf("calculator = %q, %v", out, err)
	}
	if _, err := Calculator().Call(context.Background(), map[string]any{"expr": "1"}); err == nil {
		t.Error("bad argument accepted")
	}
}

func FuzzEvalArithmetic(f *testing.F) {
	for _, s := range []string{"1 + 2 * 3", "((2))^-1", "max(1, sqrt(2))", "1e400", "-(-(-1))", "pi*e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = EvalArithmetic(s)
	})
}
