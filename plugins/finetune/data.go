package finetune

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyrand"
)

// Step is one predictor call of a bootstrapped run: the predictor (its
// signature and demos at the time), its dotted name in the program, and
// the inputs it was given and the outputs it produced.
type Step struct {
	Name      string
	Predictor *module.Predict
	Inputs    map[string]any
	Outputs   map[string]any
}

// Trace is the teacher's run on one training example: its predictor calls
// in the order they finished, and the metric's score (DSPy's TraceData).
type Trace struct {
	// Index is the example's position in the training set.
	Index int
	Steps []Step
	Score float64
	// Err is why the run or its scoring failed; such a trace has no steps
	// and never passes.
	Err error
}

// Passed reports whether the trace's steps are training data: DSPy keeps
// a trace whose score is truthy (`if d["score"]`), so any score but 0
// passes, and a failed run never does.
func (t Trace) Passed() bool { return t.Err == nil && t.Score != 0 }

// ErrNoData: no trace passed the metric, so there is nothing to train on
// (no job is started).
var ErrNoData = errors.New("finetune: no training data")

// Line is one training example in OpenAI's chat format.
type Line struct {
	Messages []lm.Message
}

// CallData formats one step with the chat adapter as DSPy's
// ChatAdapter.format_finetune_data does: the messages of the call (system,
// a user/assistant pair per demo unless excludeDemos, the user message)
// and the step's outputs as the assistant's answer.
func CallData(a *adapter.ChatAdapter, s Step, excludeDemos bool) (Line, error) {
	if s.Predictor == nil {
		return Line{}, fmt.Errorf("finetune: step of %q has no predictor", s.Name)
	}
	sig := s.Predictor.Signature()
	var demos []example.Example
	if !excludeDemos {
		demos = s.Predictor.Demos()
	}
	msgs, err := a.Format(sig, demos, s.Inputs)
	if err != nil {
		return Line{}, fmt.Errorf("finetune: format a call of %q: %w", s.Name, err)
	}
	msgs = append(msgs, lm.Message{Role: lm.RoleAssistant, Content: a.FormatAssistant(sig, s.Outputs)})
	return Line{Messages: msgs}, nil
}

// TrainingData is DSPy's BootstrapFinetune._prepare_finetune_data: from
// every passing trace, in training-set order, each step that keep accepts
// (nil keeps all: DSPy's multitask data) formatted with CallData, then
// shuffled with random.Random(0).
func TrainingData(traces []Trace, keep func(Step) bool, excludeDemos bool) ([]Line, error) {
	a := &adapter.ChatAdapter{}
	var lines []Line
	for _, t := range traces {
		if !t.Passed() {
			continue
		}
		for _, s := range t.Steps {
			if keep != nil && !keep(s) {
				continue
			}
			l, err := CallData(a, s, excludeDemos)
			if err != nil {
				return nil, err
			}
			lines = append(lines, l)
		}
	}
	pyrand.Shuffle(pyrand.New(0), lines)
	return lines, nil
}

// JSONL writes lines as DSPy writes its training file (save_data: orjson,
// one object a line): {"messages":[{"role":…,"content":…},…]}, compact,
// UTF-8 unescaped, each line ending in "\n".
func JSONL(lines []Line) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(`{"messages":[`)
		for i, m := range l.Messages {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"role":`)
			writeString(&b, m.Role)
			b.WriteString(`,"content":`)
			writeString(&b, m.Content)
			b.WriteByte('}')
		}
		b.WriteString("]}\n")
	}
	return b.Bytes()
}

// writeString writes s as orjson writes a str: '"' and '\\' escaped, \b
// \t \n \f \r by name, the other control characters as \u00xx, everything
// else as UTF-8 (invalid bytes become U+FFFD, which Python's str cannot
// hold anyway).
func writeString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			b.WriteString("\uFFFD")
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[r>>4])
			b.WriteByte(hex[r&0xf])
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	b.WriteByte('"')
}

// DataHash is the hex SHA-256 of a training file.
func DataHash(jsonl []byte) string {
	h := sha256.Sum256(jsonl)
	return hex.EncodeToString(h[:])
}
