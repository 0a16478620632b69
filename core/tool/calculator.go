package tool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// CalculatorArgs is the calculator tool's argument.
type CalculatorArgs struct {
	Expression string `json:"expression" desc:"an arithmetic expression, e.g. (3 + 4.5) * 2 ^ 3"`
}

// Calculator returns a tool that evaluates arithmetic: numbers, + - * / %,
// ^ or ** (power), parentheses, unary minus, and sqrt, abs, round, floor,
// ceil, min, max. It is the built-in tool "calculator" of program files.
func Calculator() *Tool {
	t, err := New("calculator", "Evaluates an arithmetic expression and returns the number.",
		func(_ context.Context, a CalculatorArgs) (any, error) {
			v, err := EvalArithmetic(a.Expression)
			if err != nil {
				return nil, err
			}
			return formatNumber(v), nil
		})
	if err != nil {
		panic(err) // the arguments above are constant and valid
	}
	return t
}

func formatNumber(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Bounds on expressions, so hostile input cannot exhaust the stack.
const (
	maxExprLen   = 4096
	maxExprDepth = 64
)

// EvalArithmetic evaluates an arithmetic expression (see Calculator).
// Errors name the position and the problem.
func EvalArithmetic(expr string) (float64, error) {
	if len(expr) > maxExprLen {
		return 0, fmt.Errorf("expression longer than %d characters", maxExprLen)
	}
	p := &arith{src: expr}
	p.skip()
	v, err := p.sum(0)
	if err != nil {
		return 0, err
	}
	p.skip()
	if p.pos < len(p.src) {
		return 0, p.errorf("unexpected %q", p.src[p.pos:p.pos+1])
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, errors.New("result is not a finite number")
	}
	return v, nil
}

type arith struct {
	src string
	pos int
}

func (p *arith) errorf(format string, args ...any) error {
	return fmt.Errorf("at column %d: %s", p.pos+1, fmt.Sprintf(format, args...))
}

func (p *arith) skip() {
	for p.pos < len(p.src) && unicode.IsSpace(rune(p.src[p.pos])) {
		p.pos++
	}
}

func (p *arith) peek(s string) bool { return strings.HasPrefix(p.src[p.pos:], s) }

func (p *arith) sum(depth int) (float64, error) {
	v, err := p.product(depth)
	if err != nil {
		return 0, err
	}
	for {
		p.skip()
		switch {
		case p.peek("+"):
			p.pos++
			r, err := p.product(depth)
			if err != nil {
				return 0, err
			}
			v += r
		case p.peek("-"):
			p.pos++
			r, err := p.product(depth)
			if err != nil {
				return 0, err
			}
			v -= r
		default:
			return v, nil
		}
	}
}

func (p *arith) product(depth int) (float64, error) {
	v, err := p.power(depth)
	if err != nil {
		return 0, err
	}
	for {
		p.skip()
		if p.peek("**") {
			return v, nil
		}
		var op byte
		switch {
		case p.peek("*"), p.peek("/"), p.peek("%"):
			op = p.src[p.pos]
			p.pos++
		default:
			return v, nil
		}
		at := p.pos
		r, err := p.power(depth)
		if err != nil {
			return 0, err
		}
		switch op {
		case '*':
			v *= r
		case '/':
			if r == 0 {
				return 0, fmt.Errorf("at column %d: division by zero", at+1)
			}
			v /= r
		case '%':
			if r == 0 {
				return 0, fmt.Errorf("at column %d: modulo by zero", at+1)
			}
			v = math.Mod(v, r)
		}
	}
}

// power is right-associative: 2^3^2 = 2^9.
func (p *arith) power(depth int) (float64, error) {
	base, err := p.unary(depth)
	if err != nil {
		return 0, err
	}
	p.skip()
	switch {
	case p.peek("**"):
		p.pos += 2
	case p.peek("^"):
		p.pos++
	default:
		return base, nil
	}
	if depth >= maxExprDepth {
		return 0, p.errorf("expression nested too deeply")
	}
	exp, err := p.power(depth + 1)
	if err != nil {
		return 0, err
	}
	return math.Pow(base, exp), nil
}

func (p *arith) unary(depth int) (float64, error) {
	p.skip()
	if depth >= maxExprDepth {
		return 0, p.errorf("expression nested too deeply")
	}
	switch {
	case p.peek("-"):
		p.pos++
		v, err := p.unary(depth + 1)
		return -v, err
	case p.peek("+"):
		p.pos++
		return p.unary(depth + 1)
	}
	return p.atom(depth)
}

var arithFuncs = map[string]func([]float64) (float64, error){
	"sqrt": func(a []float64) (float64, error) {
		if a[0] < 0 {
			return 0, errors.New("sqrt of a negative number")
		}
		return math.Sqrt(a[0]), nil
	},
	"abs":   func(a []float64) (float64, error) { return math.Abs(a[0]), nil },
	"round": func(a []float64) (float64, error) { return math.Round(a[0]), nil },
	"floor": func(a []float64) (float64, error) { return math.Floor(a[0]), nil },
	"ceil":  func(a []float64) (float64, error) { return math.Ceil(a[0]), nil },
	"min":   func(a []float64) (float64, error) { return math.Min(a[0], a[1]), nil },
	"max":   func(a []float64) (float64, error) { return math.Max(a[0], a[1]), nil },
}

var arithArity = map[string]int{"sqrt": 1, "abs": 1, "round": 1, "floor": 1, "ceil": 1, "min": 2, "max": 2}

func (p *arith) atom(depth int) (float64, error) {
	p.skip()
	if p.pos >= len(p.src) {
		return 0, p.errorf("expected a number, found the end of the expression")
	}
	c := p.src[p.pos]
	switch {
	case c == '(':
		p.pos++
		v, err := p.sum(depth + 1)
		if err != nil {
			return 0, err
		}
		p.skip()
		if !p.peek(")") {
			return 0, p.errorf(`expected ")"`)
		}
		p.pos++
		return v, nil
	case c >= '0' && c <= '9' || c == '.':
		start := p.pos
		for p.pos < len(p.src) && (p.src[p.pos] >= '0' && p.src[p.pos] <= '9' || p.src[p.pos] == '.' || p.src[p.pos] == '_') {
			p.pos++
		}
		if p.pos < len(p.src) && (p.src[p.pos] == 'e' || p.src[p.pos] == 'E') {
			p.pos++
			if p.pos < len(p.src) && (p.src[p.pos] == '+' || p.src[p.pos] == '-') {
				p.pos++
			}
			for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
				p.pos++
			}
		}
		v, err := strconv.ParseFloat(strings.ReplaceAll(p.src[start:p.pos], "_", ""), 64)
		if err != nil {
			p.pos = start
			return 0, p.errorf("malformed number %q", p.src[start:min(len(p.src), start+20)])
		}
		return v, nil
	case unicode.IsLetter(rune(c)):
		start := p.pos
		for p.pos < len(p.src) && unicode.IsLetter(rune(p.src[p.pos])) {
			p.pos++
		}
		name := strings.ToLower(p.src[start:p.pos])
		switch name {
		case "pi":
			return math.Pi, nil
		case "e":
			return math.E, nil
		}
		fn, ok := arithFuncs[name]
		if !ok {
			p.pos = start
			return 0, p.errorf("unknown name %q", name)
		}
		p.skip()
		if !p.peek("(") {
			return 0, p.errorf(`expected "(" after %s`, name)
		}
		p.pos++
		var args []float64
		for {
			v, err := p.sum(depth + 1)
			if err != nil {
				return 0, err
			}
			args = append(args, v)
			p.skip()
			if p.peek(",") {
				p.pos++
				continue
			}
			break
		}
		if !p.peek(")") {
			return 0, p.errorf(`expected ")" to close %s(`, name)
		}
		p.pos++
		if len(args) != arithArity[name] {
			return 0, fmt.Errorf("%s takes %d arguments, got %d", name, arithArity[name], len(args))
		}
		return fn(args)
	}
	return 0, p.errorf("unexpected %q", string(c))
}
