package lmtest_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/signature"
)

// The bundled task: examples/capitals, loaded as `dspex mock-lm --dataset
// train.jsonl --dataset dev.jsonl` loads it.
var capitalsFiles = []string{"../../../examples/capitals/train.jsonl", "../../../examples/capitals/dev.jsonl"}

// goodInstructions carries every cue category for every topic of the
// bundled task: topic words, the answer format and a reasoning cue.
const goodInstructions = "Answer questions about capitals, currencies, languages, chemical symbols and authors. " +
	"Reply with only the answer, in one or two words. Think carefully."

// taskPrompt is one way of prompting the bundled task.
type taskPrompt struct {
	name    string
	adapter adapter.Adapter
	sig     *signature.Signature
	// demos picks the demos for an asked example; nil for none.
	demos func(ex lmtest.DatasetExample) []example.Example
	// model is the model asked; "" asks lmtest.DefaultModel.
	model string
}

// taskResult is a prompt's accuracy over the dev split, and the mean p the
// skill model gives its prompts.
type taskResult struct {
	acc, meanP float64
}

// runTask prompts the simulator with every dev question through real
// HTTP requests, formatted by the adapter, and parses the answers back.
func runTask(t *testing.T, s *lmtest.Server, d *lmtest.Dataset, dev []lmtest.DatasetExample, tp taskPrompt) taskResult {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	var res taskResult
	for _, ex := range dev {
		var demos []example.Example
		if tp.demos != nil {
			demos = tp.demos(ex)
		}
		msgs, err := tp.adapter.Format(tp.sig, demos, map[string]any{"question": ex.Input})
		if err != nil {
			t.Fatal(err)
		}
		simMsgs := make([]lmtest.Message, len(msgs))
		for i, m := range msgs {
			simMsgs[i] = lmtest.Message{Role: m.Role, Content: m.Content}
		}
		p, ok := d.Probability(simMsgs)
		if !ok {
			t.Fatalf("%s: the simulator does not recognise %q", tp.name, ex.Input)
		}
		res.meanP += p
		body, err := json.Marshal(map[string]any{"model": cmp.Or(tp.model, lmtest.DefaultModel), "messages": msgs, "temperature": 0})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Post(s.URL()+"/chat/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Choices []struct {
				Message lm.Message `json:"message"`
			} `json:"choices"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || len(out.Choices) != 1 {
			t.Fatalf("%s: status %d, %v", tp.name, resp.StatusCode, err)
		}
		fields, err := tp.adapter.Parse(tp.sig, out.Choices[0].Message.Content)
		if err != nil {
			t.Fatalf("%s: parse %q: %v", tp.name, out.Choices[0].Message.Content, err)
		}
		if norm(fmt.Sprint(fields["answer"])) == norm(ex.Answer) {
			res.acc++
		}
	}
	res.acc /= float64(len(dev))
	res.meanP /= float64(len(dev))
	return res
}

func norm(s string) string { return strings.Join(strings.Fields(strings.ToLower(s)), " ") }

// TestBundledTask measures the bundled task against the skill model's
// design: zero-shot accuracy of 30-45%, and at least 20 points more with
// four correct demos on the question's topic and a good instruction.
// These figures measure prompts against the simulator, not a model.
func TestBundledTask(t *testing.T) {
	d, err := lmtest.LoadDatasetFiles(capitalsFiles, lmtest.DatasetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var train, dev []lmtest.DatasetExample
	for _, ex := range d.Examples() {
		if strings.HasSuffix(ex.File, "train.jsonl") {
			train = append(train, ex)
		} else {
			dev = append(dev, ex)
		}
	}
	topics := map[string]int{}
	for _, ex := range d.Examples() {
		topics[ex.Topic]++
	}
	if d.Len() < 120 || d.Len() > 200 || len(topics) < 4 || len(topics) > 6 || len(train) < d.Len()*35/100 || len(dev) < d.Len()/2 {
		t.Fatalf("bundled task: %d examples (%d train, %d dev), topics %v", d.Len(), len(train), len(dev), topics)
	}

	s, err := lmtest.Start(t.Context(), lmtest.Config{Dataset: d, RecordLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	demo := func(ex lmtest.DatasetExample) example.Example {
		return example.New(map[string]any{"question": ex.Input, "answer": ex.Answer})
	}
	// Four correct training demos on the asked question's topic, as a
	// good demo selection (KNN, or a per-topic bootstrap) would find.
	relevant := func(ex lmtest.DatasetExample) []example.Example {
		var out []example.Example
		for _, tr := range train {
			if tr.Topic == ex.Topic && len(out) < 4 {
				out = append(out, demo(tr))
			}
		}
		return out
	}
	// The first eight training examples whatever the question, as a
	// fixed labeled few-shot set would be.
	fixed := func(lmtest.DatasetExample) []example.Example {
		var out []example.Example
		for _, tr := range train[:8] {
			out = append(out, demo(tr))
		}
		return out
	}
	// Four demos on the topic, each with another example's answer.
	misleading := func(ex lmtest.DatasetExample) []example.Example {
		out := relevant(ex)
		for i := range out {
			out[i] = out[i].With("answer", train[(i*7+3)%len(train)].Answer+" (misremembered)")
		}
		return out
	}

	predict := signature.MustParse("question -> answer")
	cot, err := predict.PrependOutput(signature.Field{Name: "reasoning", Type: signature.StringType()})
	if err != nil {
		t.Fatal(err)
	}
	good := predict.WithInstructions(goodInstructions)
	chat := &adapter.ChatAdapter{NoFallback: true}
	prompts := []taskPrompt{
		{name: "predict, zero-shot", adapter: chat, sig: predict},
		{name: "chain of thought, zero-shot", adapter: chat, sig: cot},
		{name: "predict, good instruction", adapter: chat, sig: good},
		{name: "predict, 8 fixed demos", adapter: chat, sig: predict, demos: fixed},
		{name: "predict, 4 relevant demos", adapter: chat, sig: predict, demos: relevant},
		{name: "predict, 4 relevant demos + good instruction", adapter: chat, sig: good, demos: relevant},
		{name: "json, 4 relevant demos + good instruction", adapter: adapter.JSONAdapter{}, sig: good, demos: relevant},
		{name: "chain of thought, 4 relevant demos + good instruction", adapter: chat,
			sig: cot.WithInstructions(goodInstructions), demos: relevant},
		{name: "predict, 4 wrong demos", adapter: chat, sig: predict, demos: misleading},
	}
	results := map[string]taskResult{}
	for _, tp := range prompts {
		r := runTask(t, s, d, dev, tp)
		results[tp.name] = r
		t.Logf("%-55s accuracy %.3f (mean p %.3f) over %d dev questions", tp.name, r.acc, r.meanP, len(dev))
		// The draws follow p: over ~100 questions the accuracy stays
		// within a few standard errors of the mean p.
		if math.Abs(r.acc-r.meanP) > 0.12 {
			t.Errorf("%s: accuracy %.3f is far from the mean p %.3f", tp.name, r.acc, r.meanP)
		}
	}

	zero := results["predict, zero-shot"].acc
	if zero < 0.30 || zero > 0.45 {
		t.Errorf("zero-shot accuracy %.3f is outside the designed 30-45%%", zero)
	}
	best := results["predict, 4 relevant demos + good instruction"].acc
	if best < zero+0.20 {
		t.Errorf("4 relevant demos + a good instruction: %.3f, want at least %.3f (zero-shot + 20 points)", best, zero+0.20)
	}
	if best < 0.70 || best > 0.90 {
		t.Errorf("4 relevant demos + a good instruction: %.3f, outside the designed 75-85%% band (with noise)", best)
	}
	if j := results["json, 4 relevant demos + good instruction"].acc; j < zero+0.20 {
		t.Errorf("JSON adapter, 4 relevant demos + a good instruction: %.3f, want at least %.3f", j, zero+0.20)
	}
	if w := results["predict, 4 wrong demos"].meanP; w >= results["predict, zero-shot"].meanP {
		t.Errorf("wrong demos do not lower p: %.3f", w)
	}

	st := s.Stats()
	if st.DatasetHits != int64(len(prompts)*len(dev)) {
		t.Errorf("dataset hits %d, want %d", st.DatasetHits, len(prompts)*len(dev))
	}
}

// The skill model rates a prompt: a demo on the question's topic and an
// instruction with task and format cues raise the chance of a correct
// answer; Assess shows each term.
func ExampleDataset_Assess() {
	data := `{"question": "What is the capital of France?", "answer": "Paris", "topic": "capital"}
{"question": "What is the capital of Italy?", "answer": "Rome", "topic": "capital"}
`
	d, err := lmtest.ReadDataset(strings.NewReader(data), "capitals.jsonl", lmtest.DatasetOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	sig := signature.MustParse("question -> answer")
	inputs := map[string]any{"question": "What is the capital of France?"}
	demos := []example.Example{example.New(map[string]any{"question": "What is the capital of Italy?", "answer": "Rome"})}
	chat := &adapter.ChatAdapter{}
	for _, c := range []struct {
		name  string
		sig   *signature.Signature
		demos []example.Example
	}{
		{"zero-shot", sig, nil},
		{"one demo, good instruction", sig.WithInstructions("Name the capital in one word."), demos},
	} {
		msgs, _ := chat.Format(c.sig, c.demos, inputs)
		sim := make([]lmtest.Message, len(msgs))
		for i, m := range msgs {
			sim[i] = lmtest.Message{Role: m.Role, Content: m.Content}
		}
		a, _ := d.Assess(sim)
		fmt.Printf("%s: %d relevant demos, instruction quality %.1f, p = %.2f\n", c.name, a.RelevantDemos, a.InstructionQuality, a.P)
	}
	// Output:
	// zero-shot: 0 relevant demos, instruction quality 0.0, p = 0.38
	// one demo, good instruction: 1 relevant demos, instruction quality 0.8, p = 0.59
}
