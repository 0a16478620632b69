package lmtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/pyjson"
)

// testDatasetLines is a small dataset with three topics; "solo" has one
// example, so its wrong answers must come from other topics.
var testDatasetLines = []string{
	`{"question": "What is the capital of France?", "answer": "Paris", "topic": "capital"}`,
	`{"question": "What is the capital of Italy?", "answer": "Rome", "topic": "capital"}`,
	`{"question": "What is the capital of Spain?", "answer": "Madrid", "topic": "capital"}`,
	`{"question": "What is the capital of Japan?", "answer": "Tokyo", "topic": "capital"}`,
	`{"question": "What is the capital of Peru?", "answer": "Lima", "topic": "capital"}`,
	`{"question": "What is the capital of Chile?", "answer": "Santiago", "topic": "capital"}`,
	`{"question": "What is the currency of Japan?", "answer": "Yen", "topic": "currency"}`,
	`{"question": "What is the currency of India?", "answer": "Rupee", "topic": "currency"}`,
	`{"question": "What is the currency of Germany?", "answer": "Euro", "topic": "currency"}`,
	`{"question": "What is the currency of France?", "answer": "Euro", "topic": "currency"}`,
	`{"question": "Who wrote Hamlet?", "answer": "William Shakespeare", "topic": "solo", "explanation": "It is one of his tragedies."}`,
}

func testDataset(t *testing.T, opts DatasetOptions) *Dataset {
	t.Helper()
	d, err := ReadDataset(strings.NewReader(strings.Join(testDatasetLines, "\n")+"\n"), "test.jsonl", opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// writeFile writes a temporary file and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadDatasetErrors(t *testing.T) {
	good := `{"question": "Q1", "answer": "A1"}`
	tests := []struct {
		name, content string
		line          int
		want          string
	}{
		{"empty line", good + "\n\n" + `{"question": "Q2", "answer": "A2"}` + "\n", 2, "empty line"},
		{"not json", good + "\n{question: Q2}\n", 2, "not valid JSON"},
		{"not an object", good + "\n[1, 2]\n", 2, "not a JSON object"},
		{"missing answer", good + "\n" + `{"question": "Q2"}` + "\n", 2, `missing key "answer"`},
		{"missing question", `{"answer": "A1"}` + "\n", 1, `missing key "question"`},
		{"null answer", `{"question": "Q1", "answer": null}`, 1, `missing key "answer"`},
		{"empty answer", `{"question": "Q1", "answer": "  "}`, 1, `key "answer" is empty`},
		{"topic not a string", `{"question": "Q1", "answer": "A1", "topic": 3}`, 1, `key "topic" must be a string`},
		{"repeated question", good + "\n" + `{"question": " Q1 ", "answer": "B"}` + "\n", 2, `"Q1" repeats line 1`},
		{"trailing data", good + " {}\n", 1, "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "data.jsonl", tt.content)
			_, err := LoadDataset(path, DatasetOptions{})
			var de *DatasetError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a *DatasetError", err)
			}
			if de.Line != tt.line || de.File != path {
				t.Errorf("at %s:%d, want %s:%d", de.File, de.Line, path, tt.line)
			}
			prefix := fmt.Sprintf("lmtest: dataset %s:%d: ", path, tt.line)
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tt.want) {
				t.Errorf("err = %q, want prefix %q and %q", msg, prefix, tt.want)
			}
		})
	}

	t.Run("empty file", func(t *testing.T) {
		_, err := LoadDataset(writeFile(t, "empty.jsonl", ""), DatasetOptions{})
		if err == nil || !strings.Contains(err.Error(), "no examples") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := LoadDataset(filepath.Join(t.TempDir(), "nope.jsonl"), DatasetOptions{})
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("repeated across files", func(t *testing.T) {
		a := writeFile(t, "a.jsonl", good+"\n")
		b := writeFile(t, "b.jsonl", `{"question": "Q0", "answer": "A0"}`+"\n"+good+"\n")
		_, err := LoadDatasetFiles([]string{a, b}, DatasetOptions{})
		want := fmt.Sprintf("lmtest: dataset %s:2: question \"Q1\" repeats %s:1", b, a)
		if err == nil || err.Error() != want {
			t.Errorf("err = %v, want %s", err, want)
		}
	})
	t.Run("same keys", func(t *testing.T) {
		_, err := ReadDataset(strings.NewReader(good), "x", DatasetOptions{InputKey: "answer"})
		if err == nil || !strings.Contains(err.Error(), "must differ") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("bad skill", func(t *testing.T) {
		for _, k := range []Skill{
			{MinP: 0.9, MaxP: 0.1},
			{MaxP: 1.5},
			{MaxDemos: -1, MaxP: 1},
			{Base: math.NaN(), MaxP: 1},
		} {
			if _, err := ReadDataset(strings.NewReader(good), "x", DatasetOptions{Skill: &k}); err == nil {
				t.Errorf("skill %+v accepted", k)
			}
		}
	})
}

func TestLoadDatasetValues(t *testing.T) {
	path := writeFile(t, "d.jsonl", `{"q": "How many legs has a spider?", "a": 8, "kind": "animals"}`+"\n"+
		`{"q": "  Is water wet?  ", "a": true}`+"\n")
	d, err := LoadDataset(path, DatasetOptions{InputKey: "q", AnswerKey: "a", TopicKey: "kind"})
	if err != nil {
		t.Fatal(err)
	}
	ex := d.Examples()
	if d.Len() != 2 || ex[0].Answer != "8" || ex[0].Topic != "animals" || ex[1].Input != "Is water wet?" ||
		ex[1].Answer != "True" || ex[1].Line != 2 || ex[1].File != path {
		t.Errorf("examples = %+v", ex)
	}
	if i, ok := d.Lookup(" Is water wet? "); !ok || i != 1 {
		t.Errorf("Lookup = %d, %v", i, ok)
	}
	if d.InputKey() != "q" || d.AnswerKey() != "a" || d.Skill() != DefaultSkill() {
		t.Errorf("keys %q %q, skill %+v", d.InputKey(), d.AnswerKey(), d.Skill())
	}
}

// dsDemo is a few-shot demo: a question and the answer shown for it.
type dsDemo struct{ q, a string }

// dsPrompt builds DSPy-style messages: a system message for question ->
// outputs with the given instructions, demos as user/assistant pairs, and
// the final user message asking q.
func dsPrompt(jsonMode bool, outputs []tf, instr string, demos []dsDemo, q string) []Message {
	in := []tf{{name: "question", typ: "str"}}
	sys := chatSystem(in, outputs)
	if jsonMode {
		sys = jsonSystem(in, outputs)
	}
	sys = strings.TrimSuffix(sys, "Answer the question.") + instr
	msgs := []Message{{Role: "system", Content: sys}}
	for _, d := range demos {
		msgs = append(msgs, Message{Role: "user", Content: "[[ ## question ## ]]\n" + d.q})
		var names []string
		var values []any
		for _, f := range outputs {
			v := "Not supplied for this particular example. "
			if f.name == "answer" {
				v = d.a
			}
			names, values = append(names, f.name), append(values, v)
		}
		if jsonMode {
			msgs = append(msgs, Message{Role: "assistant", Content: jsonText(names, values)})
		} else {
			msgs = append(msgs, Message{Role: "assistant", Content: chatText(names, values)})
		}
	}
	final := userMessage(q)
	if jsonMode {
		final = "[[ ## question ## ]]\n" + q + "\n\nRespond with a JSON object in the following order of fields: `answer`."
	}
	return append(msgs, Message{Role: "user", Content: final})
}

var (
	answerOnly   = []tf{{name: "answer", typ: "str"}}
	cotOutputs   = []tf{{name: "reasoning", typ: "str"}, {name: "answer", typ: "str"}}
	defaultInstr = "Given the fields `question`, produce the fields `answer`."
	goodInstr    = "Name the capital city. Answer with one word, and think carefully."
)

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func TestSkillProbability(t *testing.T) {
	d := testDataset(t, DatasetOptions{})
	k := DefaultSkill()
	const q = "What is the capital of France?"
	rel := []dsDemo{
		{"What is the capital of Italy?", "Rome"}, {"What is the capital of Spain?", "Madrid"},
		{"What is the capital of Japan?", "Tokyo"}, {"What is the capital of Peru?", "Lima"},
		{"What is the capital of Chile?", "santiago "}, // answers compare lower-cased and trimmed
	}
	other := []dsDemo{{"What is the currency of Japan?", "Yen"}, {"What is the currency of India?", "Rupee"}}
	wrong := []dsDemo{{"What is the capital of Italy?", "Milan"}, {"What is the currency of India?", "Dollar"}}
	unknown := []dsDemo{{"What is the capital of Mars?", "Olympus"}}

	tests := []struct {
		name    string
		json    bool
		outputs []tf
		instr   string
		demos   []dsDemo
		want    float64
	}{
		{"zero-shot", false, answerOnly, defaultInstr, nil, sigmoid(k.Base)},
		{"zero-shot json", true, answerOnly, defaultInstr, nil, sigmoid(k.Base)},
		{"chain of thought", false, cotOutputs, defaultInstr, nil, sigmoid(k.Base + k.ReasoningBonus)},
		{"one relevant demo", false, answerOnly, defaultInstr, rel[:1], sigmoid(k.Base + k.DemoWeight)},
		{"four relevant demos", false, answerOnly, defaultInstr, rel[:4], sigmoid(k.Base + 4*k.DemoWeight)},
		{"five relevant demos count four", false, answerOnly, defaultInstr, rel, sigmoid(k.Base + 4*k.DemoWeight)},
		{"json demos", true, answerOnly, defaultInstr, rel[:2], sigmoid(k.Base + 2*k.DemoWeight)},
		{"other-topic demos", false, answerOnly, defaultInstr, other, sigmoid(k.Base + 2*k.OtherDemoWeight)},
		{"relevant first under the cap", false, answerOnly, defaultInstr, append(slices.Clone(other), rel[:3]...),
			sigmoid(k.Base + 3*k.DemoWeight + k.OtherDemoWeight)},
		{"wrong demos", false, answerOnly, defaultInstr, wrong, sigmoid(k.Base - 2*k.WrongDemoWeight)},
		{"unknown demos count nothing", false, answerOnly, defaultInstr, unknown, sigmoid(k.Base)},
		{"good instruction", false, answerOnly, goodInstr, nil, sigmoid(k.Base + k.InstructionWeight)},
		{"everything", false, cotOutputs, goodInstr, rel[:4],
			sigmoid(k.Base + 4*k.DemoWeight + k.InstructionWeight + k.ReasoningBonus)},
		{"clamped low", false, answerOnly, defaultInstr, slices.Repeat(wrong, 5), k.MinP},
		{"copied demo", false, answerOnly, defaultInstr, []dsDemo{{q, "paris"}}, k.MaxP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := dsPrompt(tt.json, tt.outputs, tt.instr, tt.demos, q)
			p, ok := d.Probability(msgs)
			if !ok {
				t.Fatal("dataset does not answer the prompt")
			}
			if math.Abs(p-tt.want) > 1e-12 {
				a, _ := d.Assess(msgs)
				t.Errorf("p = %.4f, want %.4f (%+v)", p, tt.want, a)
			}
		})
	}

	t.Run("order", func(t *testing.T) {
		p := func(instr string, demos []dsDemo) float64 {
			v, _ := d.Probability(dsPrompt(false, answerOnly, instr, demos, q))
			return v
		}
		base := p(defaultInstr, nil)
		if !(p(defaultInstr, rel[:1]) > base && p(defaultInstr, rel[:2]) > p(defaultInstr, rel[:1]) &&
			p(defaultInstr, rel[:1]) > p(defaultInstr, other[:1]) && p(defaultInstr, other[:1]) > base &&
			p(defaultInstr, wrong[:1]) < base && p("Answer in one word.", nil) > base &&
			p(goodInstr, nil) > p("Answer in one word.", nil)) {
			t.Error("p does not rise with correct demos and instructions and fall with wrong demos")
		}
	})

	t.Run("clamped high", func(t *testing.T) {
		sk := DefaultSkill()
		sk.Base = 10
		d := testDataset(t, DatasetOptions{Skill: &sk})
		if p, _ := d.Probability(dsPrompt(false, answerOnly, defaultInstr, nil, q)); p != sk.MaxP {
			t.Errorf("p = %v, want %v", p, sk.MaxP)
		}
	})

	t.Run("not answered", func(t *testing.T) {
		for name, msgs := range map[string][]Message{
			"unknown question": dsPrompt(false, answerOnly, defaultInstr, nil, "What is the capital of Mars?"),
			"no answer field":  dsPrompt(false, []tf{{name: "summary", typ: "str"}}, defaultInstr, nil, q),
			"no prompt":        {{Role: "user", Content: q}},
			"no user message":  {{Role: "system", Content: chatSystem([]tf{{name: "question", typ: "str"}}, answerOnly)}},
		} {
			if _, ok := d.Assess(msgs); ok {
				t.Errorf("%s: the dataset answers", name)
			}
		}
	})
}

func TestInstructionCues(t *testing.T) {
	d := testDataset(t, DatasetOptions{TopicCues: map[string][]string{"currency": {"money"}, "": {"world facts"}}})
	tests := []struct {
		instr, q                string
		format, task, reasoning bool
	}{
		{defaultInstr, "What is the capital of France?", false, false, false},
		{"Given the fields `question`, produce the fields `reasoning`, `answer`.", "What is the capital of France?", false, false, false},
		{"Answer the question.", "What is the capital of France?", false, false, false},
		{"Reply with ONE word only.", "What is the capital of France?", true, false, false},
		{"Give the exact answer, nothing else.", "What is the capital of France?", true, false, false},
		{"Which capital city is it?", "What is the capital of France?", false, true, false},
		{"Answer questions about capitals and currencies.", "What is the currency of India?", false, true, false},
		{"Which capital city is it?", "What is the currency of India?", false, false, false},
		{"Which money do they use?", "What is the currency of India?", false, true, false},
		{"Answer these world facts.", "Who wrote Hamlet?", false, true, false},
		{"Think step by step.", "Who wrote Hamlet?", false, false, true},
		{"Name the capital.\n        Be brief; reason carefully.", "What is the capital of France?", true, true, true},
		{"Capitalise the answer.", "What is the capital of France?", false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.instr, func(t *testing.T) {
			a, ok := d.Assess(dsPrompt(false, answerOnly, tt.instr, nil, tt.q))
			if !ok {
				t.Fatal("not answered")
			}
			if a.FormatCue != tt.format || a.TaskCue != tt.task || a.ReasoningCue != tt.reasoning {
				t.Errorf("cues format=%v task=%v reasoning=%v, want %v %v %v", a.FormatCue, a.TaskCue, a.ReasoningCue,
					tt.format, tt.task, tt.reasoning)
			}
			want := 0.0
			for _, c := range []struct {
				on bool
				w  float64
			}{{tt.format, FormatCueWeight}, {tt.task, TaskCueWeight}, {tt.reasoning, ReasoningCueWeight}} {
				if c.on {
					want += c.w
				}
			}
			if math.Abs(a.InstructionQuality-want) > 1e-12 {
				t.Errorf("quality = %v, want %v", a.InstructionQuality, want)
			}
		})
	}
}

// dsBody is a chat completion request for msgs.
func dsBody(msgs []Message, extra map[string]any) map[string]any {
	wire := make([]map[string]any, len(msgs))
	for i, m := range msgs {
		wire[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	b := map[string]any{"model": "test-model", "messages": wire}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

func chatAnswer(t *testing.T, text string) string {
	t.Helper()
	_, vals := sections(text)
	a, ok := vals["answer"]
	if !ok {
		t.Fatalf("no answer in %q", text)
	}
	return a
}

func TestDatasetAnswers(t *testing.T) {
	d := testDataset(t, DatasetOptions{})
	s := startServer(t, Config{Seed: 3, Dataset: d})
	const q = "What is the capital of France?"
	body := dsBody(dsPrompt(false, cotOutputs, defaultInstr, nil, q), map[string]any{"seed": 1})

	first := complete(t, s, body)
	again := complete(t, s, body)
	if first.Choices[0].Message.Content != again.Choices[0].Message.Content {
		t.Error("the same request got different answers")
	}
	names, vals := sections(first.Choices[0].Message.Content)
	if !slices.Equal(names, []string{"reasoning", "answer", "completed"}) {
		t.Fatalf("fields = %v", names)
	}
	if !strings.Contains(vals["reasoning"], vals["answer"]+".") || !strings.Contains(vals["reasoning"], "capital") {
		t.Errorf("reasoning %q does not lead to answer %q", vals["reasoning"], vals["answer"])
	}
	recs := s.Requests()
	rec := recs[len(recs)-1]
	if rec.Example != 0 || len(rec.Correct) != 1 || rec.Correct[0] != (vals["answer"] == "Paris") {
		t.Errorf("record example %d correct %v for answer %q", rec.Example, rec.Correct, vals["answer"])
	}

	// Unknown questions are answered as before: placeholders, no example.
	other := complete(t, s, dsBody(dsPrompt(false, answerOnly, defaultInstr, nil, "What is the capital of Mars?"), nil))
	if a := chatAnswer(t, other.Choices[0].Message.Content); !strings.Contains(a, "answer") {
		t.Errorf("unknown question answered %q", a)
	}
	recs = s.Requests()
	if rec := recs[len(recs)-1]; rec.Example != -1 || rec.Correct != nil {
		t.Errorf("unknown question recorded example %d, %v", rec.Example, rec.Correct)
	}
	st := s.Stats()
	if st.DatasetHits != 2 || st.DatasetAnswers != 2 {
		t.Errorf("stats = %+v", st)
	}
}

// TestDatasetAccuracyTracksP asks the same question in 400 prompts that
// differ only in demos the dataset does not know (so p stays the same):
// each prompt draws again, and the share answered correctly tracks p.
func TestDatasetAccuracyTracksP(t *testing.T) {
	d := testDataset(t, DatasetOptions{})
	s := startServer(t, Config{Seed: 11, Dataset: d, RecordLimit: -1})
	const q, n = "What is the capital of Italy?", 400
	var p float64
	correct := 0
	for i := range n {
		msgs := dsPrompt(false, answerOnly, defaultInstr, []dsDemo{{fmt.Sprintf("Unrelated question %d?", i), "x"}}, q)
		pi, ok := d.Probability(msgs)
		if !ok || (i > 0 && pi != p) {
			t.Fatalf("prompt %d: p = %v, %v", i, pi, ok)
		}
		p = pi
		if chatAnswer(t, complete(t, s, dsBody(msgs, nil)).Choices[0].Message.Content) == "Rome" {
			correct++
		}
	}
	acc := float64(correct) / n
	t.Logf("p = %.3f, accuracy over %d prompts = %.3f", p, n, acc)
	if p < 0.3 || p > 0.5 {
		t.Fatalf("p = %v; the test wants p near 0.4", p)
	}
	if math.Abs(acc-p) > 0.08 {
		t.Errorf("accuracy %.3f is not within 0.08 of p %.3f", acc, p)
	}
	if st := s.Stats(); st.DatasetHits != n || st.DatasetAnswers != n || st.DatasetCorrect != int64(correct) {
		t.Errorf("stats = %+v, want %d hits and %d correct", st, n, correct)
	}
}

// TestDatasetChoices: each of n choices draws on its own, and choice i of
// seed s equals choice 0 of seed s+i, as placeholders do.
func TestDatasetChoices(t *testing.T) {
	d := testDataset(t, DatasetOptions{})
	s := startServer(t, Config{Dataset: d})
	msgs := dsPrompt(false, cotOutputs, goodInstr, nil, "What is the capital of Japan?")
	r := complete(t, s, dsBody(msgs, map[string]any{"n": 64, "seed": 5}))
	seen := map[bool]int{}
	for _, c := range r.Choices {
		seen[chatAnswer(t, c.Message.Content) == "Tokyo"]++
	}
	if seen[true] == 0 || seen[false] == 0 {
		t.Errorf("64 choices with p≈0.6: correct/wrong = %d/%d", seen[true], seen[false])
	}
	for _, i := range []int{1, 17} {
		one := complete(t, s, dsBody(msgs, map[string]any{"seed": 5 + i}))
		if got, want := one.Choices[0].Message.Content, r.Choices[i].Message.Content; got != want {
			t.Errorf("seed %d choice 0 = %q, want seed 5 choice %d %q", 5+i, got, i, want)
		}
	}
	if st := s.Stats(); st.DatasetHits != 3 || st.DatasetAnswers != 66 {
		t.Errorf("stats = %+v", st)
	}
}

func TestDatasetWrongAnswersPlausible(t *testing.T) {
	sk := DefaultSkill()
	sk.Base, sk.MinP = -20, 0 // always wrong
	d := testDataset(t, DatasetOptions{Skill: &sk})
	s := startServer(t, Config{Dataset: d, RecordLimit: -1})
	tests := []struct {
		q, gold string
		allowed []string
	}{
		{"What is the capital of France?", "Paris", []string{"Rome", "Madrid", "Tokyo", "Lima", "Santiago"}},
		// Two currencies share the gold answer; only the others may appear.
		{"What is the currency of France?", "Euro", []string{"Yen", "Rupee"}},
		// A topic of one: wrong answers come from the whole dataset.
		{"Who wrote Hamlet?", "William Shakespeare", []string{"Paris", "Rome", "Madrid", "Tokyo", "Lima", "Santiago", "Yen", "Rupee", "Euro"}},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			seen := map[string]bool{}
			for seed := range 60 {
				r := complete(t, s, dsBody(dsPrompt(false, answerOnly, defaultInstr, nil, tt.q), map[string]any{"seed": seed}))
				a := chatAnswer(t, r.Choices[0].Message.Content)
				if strings.EqualFold(a, tt.gold) || !slices.Contains(tt.allowed, a) {
					t.Fatalf("seed %d: wrong answer %q is not a plausible one", seed, a)
				}
				seen[a] = true
			}
			if len(seen) < 2 {
				t.Errorf("wrong answers never vary: %v", seen)
			}
		})
	}
	if st := s.Stats(); st.DatasetCorrect != 0 || st.DatasetAnswers != 180 {
		t.Errorf("stats = %+v", st)
	}

	t.Run("one answer for all", func(t *testing.T) {
		d, err := ReadDataset(strings.NewReader(`{"question": "A?", "answer": "x"}`+"\n"+`{"question": "B?", "answer": "X"}`),
			"same.jsonl", DatasetOptions{Skill: &sk})
		if err != nil {
			t.Fatal(err)
		}
		s := startServer(t, Config{Dataset: d})
		r := complete(t, s, dsBody(dsPrompt(false, answerOnly, defaultInstr, nil, "A?"), nil))
		if a := chatAnswer(t, r.Choices[0].Message.Content); a != "I do not know." {
			t.Errorf("answer = %q", a)
		}
	})
}

func TestDatasetJSONMode(t *testing.T) {
	d := testDataset(t, DatasetOptions{})
	s := startServer(t, Config{Dataset: d})
	outputs := []tf{
		{name: "reasoning", typ: "str"},
		{name: "answer", typ: "str"},
		{name: "confidence", typ: "float", note: floatNote},
		{name: "explanation", typ: "str"},
	}
	answers := map[string]bool{}
	for seed := range 30 {
		msgs := dsPrompt(true, outputs, goodInstr, []dsDemo{{"What is the capital of Italy?", "Rome"}}, "Who wrote Hamlet?")
		r := complete(t, s, dsBody(msgs, map[string]any{"seed": seed, "response_format": map[string]any{"type": "json_object"}}))
		v, err := pyjson.Decode([]byte(r.Choices[0].Message.Content))
		if err != nil {
			t.Fatalf("not JSON: %v\n%s", err, r.Choices[0].Message.Content)
		}
		obj := v.(pyjson.Object)
		var keys []string
		for _, m := range obj {
			keys = append(keys, m.Key)
		}
		if !slices.Equal(keys, []string{"reasoning", "answer", "confidence", "explanation"}) {
			t.Fatalf("keys = %v", keys)
		}
		a, _ := obj.Get("answer")
		answer := a.(string)
		answers[answer] = true
		if c, _ := obj.Get("confidence"); !isFloat(c) {
			t.Errorf("confidence = %#v", c)
		}
		// The explanation comes from the example answered, when it has one.
		if e, _ := obj.Get("explanation"); answer == "William Shakespeare" && e != "It is one of his tragedies." {
			t.Errorf("explanation = %#v", e)
		}
	}
	if !answers["William Shakespeare"] || len(answers) < 2 {
		t.Errorf("answers over 30 seeds = %v", answers)
	}
}

func isFloat(v any) bool { _, ok := v.(float64); return ok }

// TestDatasetTypedAnswer: in JSON mode an answer read from the file as a
// number stays a number.
func TestDatasetTypedAnswer(t *testing.T) {
	sk := DefaultSkill()
	sk.Base, sk.MaxP = 20, 1 // always right
	d, err := ReadDataset(strings.NewReader(`{"question": "How many legs has a spider?", "answer": 8}`), "n.jsonl", DatasetOptions{Skill: &sk})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{Dataset: d})
	msgs := dsPrompt(true, []tf{{name: "answer", typ: "int", note: intNote}}, defaultInstr, nil, "How many legs has a spider?")
	r := complete(t, s, dsBody(msgs, nil))
	var got map[string]any
	if err := json.Unmarshal([]byte(r.Choices[0].Message.Content), &got); err != nil || got["answer"] != 8.0 {
		t.Errorf("answer = %#v (%v)", got, err)
	}
}

// TestScriptBeforeDataset: a matching rule answers the whole request; the
// dataset answers only what no rule matches.
func TestScriptBeforeDataset(t *testing.T) {
	d := testDataset(t, DatasetOptions{})
	s := startServer(t, Config{Dataset: d, Script: &Script{Rules: []Rule{
		{Match: "France", Fields: map[string]any{"answer": "scripted"}},
	}}})
	r := complete(t, s, dsBody(dsPrompt(false, answerOnly, defaultInstr, nil, "What is the capital of France?"), nil))
	if a := chatAnswer(t, r.Choices[0].Message.Content); a != "scripted" {
		t.Errorf("answer = %q", a)
	}
	complete(t, s, dsBody(dsPrompt(false, answerOnly, defaultInstr, nil, "What is the capital of Italy?"), nil))
	if st := s.Stats(); st.ScriptHits != 1 || st.DatasetHits != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// FuzzDatasetAssess: assessing arbitrary messages never panics and always
// gives p within [MinP, MaxP].
func FuzzDatasetAssess(f *testing.F) {
	f.Add(dsPrompt(false, cotOutputs, goodInstr, []dsDemo{{"What is the capital of Italy?", "Rome"}}, "What is the capital of France?")[0].Content,
		"[[ ## question ## ]]\nWhat is the capital of Italy?", "[[ ## answer ## ]]\nRome", "[[ ## question ## ]]\nWhat is the capital of France?")
	f.Add("Your output fields are:\n1. `answer` (str):", "", "{\"answer\": ", "[[ ## question ## ]]\n")
	d, err := ReadDataset(strings.NewReader(strings.Join(testDatasetLines, "\n")), "f.jsonl", DatasetOptions{})
	if err != nil {
		f.Fatal(err)
	}
	k := d.Skill()
	f.Fuzz(func(t *testing.T, sys, demoUser, demoAssistant, user string) {
		msgs := []Message{{"system", sys}, {"user", demoUser}, {"assistant", demoAssistant}, {"user", user}}
		if a, ok := d.Assess(msgs); ok && (a.P < k.MinP || a.P > k.MaxP || math.IsNaN(a.P)) {
			t.Errorf("p = %v", a.P)
		}
	})
}
