package teleprompt_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/evaluate"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/teleprompt"
)

// Markers of the prompt model's two prompts (their system messages).
const (
	basicMarker    = "I will give you a ``signature`` of fields"
	attemptsMarker = "I will give some task instructions I've tried"
)

// capitalsScripted is capitals with a script for the simulator (whose
// rules answer before the dataset does).
func capitalsScripted(t testing.TB, script *lmtest.Script) (context.Context, []example.Example, []example.Example, *lmtest.Server) {
	t.Helper()
	train, err := example.LoadJSONL(filepath.Join(taskDir, "train.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := example.LoadJSONL(filepath.Join(taskDir, "dev.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := lmtest.LoadDatasetFiles([]string{filepath.Join(taskDir, "train.jsonl"), filepath.Join(taskDir, "dev.jsonl")}, lmtest.DatasetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := lmtest.Start(context.Background(), lmtest.Config{Dataset: ds, Script: script, RecordLimit: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	client, err := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	if err != nil {
		t.Fatal(err)
	}
	return module.WithLM(context.Background(), client), train, dev, srv
}

// promptRequests returns the simulator's recorded requests whose system
// message contains marker.
func promptRequests(srv *lmtest.Server, marker string) []lmtest.RecordedRequest {
	var out []lmtest.RecordedRequest
	for _, r := range srv.Requests() {
		if len(r.Messages) > 0 && strings.Contains(r.Messages[0].Content, marker) {
			out = append(out, r)
		}
	}
	return out
}

// trialRecorder collects the optimizer trial events published in its
// context.
type trialRecorder struct {
	mu     sync.Mutex
	trials []*event.OptimizerTrialInfo
	sub    *event.Subscription
}

func recordTrials(t testing.TB, ctx context.Context) (context.Context, *trialRecorder) {
	t.Helper()
	bus := event.NewBus()
	rec := &trialRecorder{}
	sub, err := bus.Subscribe(event.SubscribeOptions{Name: "test", Kinds: []event.Kind{event.OptimizerTrial}}, func(ev event.Event) {
		rec.mu.Lock()
		if info := ev.Data.(*event.OptimizerTrialInfo); info.Score != nil { // not a proposal
			rec.trials = append(rec.trials, info)
		}
		rec.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	rec.sub = sub
	t.Cleanup(bus.Close)
	return event.WithBus(ctx, bus), rec
}

// done waits for the events published so far and returns them.
func (r *trialRecorder) done() []*event.OptimizerTrialInfo {
	r.sub.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.trials)
}

// The prompt model's prompts are DSPy's, byte for byte (ChatAdapter output
// of DSPy's BasicGenerateInstruction and GenerateInstructionGivenAttempts).
func TestCOPROPrompts(t *testing.T) {
	const outputs = "Your output fields are:\n1. `proposed_instruction` (str): The improved instructions for the language model\n2. `proposed_prefix_for_output_field` (str): The string at the end of the prompt, which will help the model start solving the task\nAll interactions will be structured in the following way, with the appropriate values filled in.\n\n"
	const respond = "\n\nRespond with the corresponding output fields, starting with the field `[[ ## proposed_instruction ## ]]`, then `[[ ## proposed_prefix_for_output_field ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."
	for _, tc := range []struct {
		name   string
		sig    *signature.Signature
		inputs map[string]any
		want   []lm.Message
	}{
		{"BasicGenerateInstruction", teleprompt.BasicGenerateInstruction(),
			map[string]any{"basic_instruction": "Given the fields `question`, produce the fields `answer`."},
			[]lm.Message{
				{Role: "system", Content: "Your input fields are:\n1. `basic_instruction` (str): The initial instructions before optimization\n" + outputs +
					"[[ ## basic_instruction ## ]]\n{basic_instruction}\n\n[[ ## proposed_instruction ## ]]\n{proposed_instruction}\n\n[[ ## proposed_prefix_for_output_field ## ]]\n{proposed_prefix_for_output_field}\n\n[[ ## completed ## ]]\nIn adhering to this structure, your objective is: \n        You are an instruction optimizer for large language models. I will give you a ``signature`` of fields (inputs and outputs) in English. Your task is to propose an instruction that will lead a good language model to perform the task well. Don't be afraid to be creative."},
				{Role: "user", Content: "[[ ## basic_instruction ## ]]\nGiven the fields `question`, produce the fields `answer`." + respond},
			}},
		{"GenerateInstructionGivenAttempts", teleprompt.GenerateInstructionGivenAttempts(),
			map[string]any{"attempted_instructions": []string{"Instruction #1: a", "Prefix #1: Answer:", "Resulting Score #1: 50.0"}},
			[]lm.Message{
				{Role: "system", Content: "Your input fields are:\n1. `attempted_instructions` (str):\n" + outputs +
					"[[ ## attempted_instructions ## ]]\n{attempted_instructions}\n\n[[ ## proposed_instruction ## ]]\n{proposed_instruction}\n\n[[ ## proposed_prefix_for_output_field ## ]]\n{proposed_prefix_for_output_field}\n\n[[ ## completed ## ]]\nIn adhering to this structure, your objective is: \n        You are an instruction optimizer for large language models. I will give some task instructions I've tried, along with their corresponding validation scores. The instructions are arranged in increasing order based on their scores, where higher scores indicate better quality.\n        \n        Your task is to propose a new instruction that will lead a good language model to perform the task even better. Don't be afraid to be creative."},
				{Role: "user", Content: "[[ ## attempted_instructions ## ]]\n[1] «Instruction #1: a»\n[2] «Prefix #1: Answer:»\n[3] «Resulting Score #1: 50.0»" + respond},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := (&adapter.ChatAdapter{}).Format(tc.sig, nil, tc.inputs)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("prompt differs from DSPy's (-want +got):\n%s", diff)
			}
		})
	}
}

// With Breadth 3 and Depth 2 on one predictor, COPRO asks the prompt model
// once with BasicGenerateInstruction (n = 2) and once with
// GenerateInstructionGivenAttempts (n = 3), and scores 3 candidates per
// round (the 2 proposals plus the original, then the 3 new ones): 6
// trials. The result is the best-scoring candidate.
func TestCOPROBreadthDepth(t *testing.T) {
	ctx, train, _, srv := capitalsScripted(t, nil)
	ctx, rec := recordTrials(t, ctx)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	original := student.Signature().Instructions()
	opt := &teleprompt.COPRO{Metric: metric.ExactMatch("answer"), Breadth: 3, Depth: 2, TrackStats: true}
	res, err := opt.Optimize(ctx, student, train[:8])
	if err != nil {
		t.Fatal(err)
	}
	trials := rec.done()

	basic, given := promptRequests(srv, basicMarker), promptRequests(srv, attemptsMarker)
	if len(basic) != 1 || basic[0].N != 2 {
		t.Errorf("BasicGenerateInstruction: %d requests (n %v), want 1 with n 2", len(basic), nOf(basic))
	}
	if len(given) != 1 || given[0].N != 3 {
		t.Fatalf("GenerateInstructionGivenAttempts: %d requests (n %v), want 1 with n 3", len(given), nOf(given))
	}
	if len(trials) != 6 || res.Evaluations != 6 || res.TotalCalls() != 6 {
		t.Errorf("%d trials, %d evaluations, %d total calls; want 6", len(trials), res.Evaluations, res.TotalCalls())
	}
	if len(res.Candidates) != 6 {
		t.Errorf("%d candidates, want 6", len(res.Candidates))
	}

	// The attempts shown after round 1 are the 3 candidates, worst first.
	var ranked []*teleprompt.InstructionCandidate
	for _, c := range res.Candidates {
		if c.Depth == 0 {
			ranked = append(ranked, c)
		}
	}
	user := given[0].Messages[len(given[0].Messages)-1].Content
	if !strings.Contains(user, "[1] «Instruction #1: "+ranked[2].Instruction+"»") ||
		!strings.Contains(user, "[7] «Instruction #3: "+ranked[0].Instruction+"»") ||
		!strings.Contains(user, "[9] «Resulting Score #3: ") {
		t.Errorf("attempts prompt:\n%s\nwant the depth-0 candidates %q worst first", user, []string{ranked[2].Instruction, ranked[1].Instruction, ranked[0].Instruction})
	}
	if !slices.ContainsFunc(ranked, func(c *teleprompt.InstructionCandidate) bool {
		return c.Instruction == original && c.Prefix == "Answer:"
	}) {
		t.Error("the original instruction was not a candidate")
	}

	for i := 1; i < len(res.Candidates); i++ {
		if res.Candidates[i].Score > res.Candidates[i-1].Score {
			t.Fatalf("candidates not sorted by score: %v then %v", res.Candidates[i-1].Score, res.Candidates[i].Score)
		}
	}
	best := res.Best
	got := best.Program.NamedPredictors()[0].Predictor.Signature()
	if best != res.Candidates[0] || got.Instructions() != best.Instruction || got.Output(0).Prefix != best.Prefix {
		t.Errorf("best program has %q / %q, best candidate %q / %q", got.Instructions(), got.Output(0).Prefix, best.Instruction, best.Prefix)
	}
	var bestTrial float64
	for _, tr := range trials {
		bestTrial = max(bestTrial, *tr.Score)
	}
	if best.Score != bestTrial {
		t.Errorf("best score %.2f, best trial %.2f", best.Score, bestTrial)
	}
	if student.Signature().Instructions() != original {
		t.Error("COPRO changed the student")
	}
	st := res.Stats["self"]
	if st == nil || !slices.Equal(st.Best.Depth, []int{0, 1}) || !slices.Equal(st.Latest.Depth, []int{0, 1}) || st.Best.Max[1] != best.Score {
		t.Errorf("stats %+v", st)
	}
}

func nOf(rs []lmtest.RecordedRequest) []int {
	var ns []int
	for _, r := range rs {
		ns = append(ns, r.N)
	}
	return ns
}

// With two predictors each round scores all of a predictor's candidates so
// far against the other's current best, as DSPy does: 2·2 in round 1 and
// 2·4 in round 2.
func TestCOPROTwoPredictors(t *testing.T) {
	ctx, train, _, srv := capitalsScripted(t, nil)
	ctx, rec := recordTrials(t, ctx)
	pipe, err := module.NewPipeline(
		module.Step{Name: "hint", Program: module.NewPredict(signature.MustParse("question -> hint"))},
		module.Step{Name: "answer", Program: module.NewPredict(signature.MustParse("question, hint -> answer"))},
	)
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&teleprompt.COPRO{Metric: metric.ExactMatch("answer"), Breadth: 2, Depth: 2}).Optimize(ctx, pipe, train[:6])
	if err != nil {
		t.Fatal(err)
	}
	trials := rec.done()
	if n := res.TotalCalls(); n != 12 {
		t.Errorf("%d total calls, want 12", n)
	}
	if len(trials) != res.Evaluations || res.Evaluations+res.Repeats != 12 {
		t.Errorf("%d trials, %d evaluations, %d repeats", len(trials), res.Evaluations, res.Repeats)
	}
	if b, g := len(promptRequests(srv, basicMarker)), len(promptRequests(srv, attemptsMarker)); b != 2 || g != 2 {
		t.Errorf("prompt model calls: %d basic, %d given attempts; want 2 and 2", b, g)
	}
	for _, np := range res.Best.Program.NamedPredictors() {
		if np.Name == res.Best.Predictor && np.Predictor.Signature().Instructions() != res.Best.Instruction {
			t.Errorf("best program's %s has %q, want %q", np.Name, np.Predictor.Signature().Instructions(), res.Best.Instruction)
		}
	}
}

// When the prompt model proposes instructions with the cues the
// simulator's skill model rewards, COPRO picks one and the optimized
// program scores higher on the dev set than the original instructions.
func TestCOPROImproves(t *testing.T) {
	const good = "Give only the exact short answer: the capital city, currency, main language, chemical symbol or author asked for. Think carefully."
	const fair = "Answer with the exact name, in one word."
	script := &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "[[ ## basic_instruction ## ]]", Fields: map[string]any{"proposed_instruction": `"` + fair + `"`, "proposed_prefix_for_output_field": "Answer:"}},
		{Match: "[[ ## attempted_instructions ## ]]", Fields: map[string]any{"proposed_instruction": good, "proposed_prefix_for_output_field": "Short Answer:"}},
	}}
	ctx, train, dev, _ := capitalsScripted(t, script)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	opt := &teleprompt.COPRO{Metric: metric.ExactMatch("answer"), Breadth: 3, Depth: 2, Eval: evaluate.Options{Concurrency: 16}}
	res, err := opt.Optimize(ctx, student, train[:40])
	if err != nil {
		t.Fatal(err)
	}
	// The same proposal, made twice in a round, is scored once.
	if res.Repeats != 3 || res.Evaluations != 3 {
		t.Errorf("%d evaluations, %d repeats; want 3 and 3", res.Evaluations, res.Repeats)
	}
	if res.Best.Instruction != good || res.Best.Prefix != "Short Answer:" {
		t.Errorf("best instruction %q (%s), want %q", res.Best.Instruction, res.Best.Prefix, good)
	}
	if len(res.Candidates) != 3 {
		t.Errorf("%d distinct candidates, want 3", len(res.Candidates))
	}
	base, opted := score(t, ctx, student, dev), score(t, ctx, res.Best.Program, dev)
	t.Logf("dev score: original instructions %.1f, COPRO %.1f (train %.1f)", base, opted, res.Best.Score)
	if opted <= base+5 {
		t.Errorf("COPRO: %.1f, original %.1f", opted, base)
	}
}

// A run resumed from the trials of a finished one evaluates nothing again
// and finds the same best candidate.
func TestCOPROResume(t *testing.T) {
	ctx, train, _, srv := capitalsScripted(t, nil)
	tctx, rec := recordTrials(t, ctx)
	student := module.NewChainOfThought(signature.MustParse("question -> answer"))
	opt := &teleprompt.COPRO{Metric: metric.ExactMatch("answer"), Breadth: 2, Depth: 2}
	first, err := opt.Optimize(tctx, student, train[:6])
	if err != nil {
		t.Fatal(err)
	}
	resume := map[string]teleprompt.Finished{}
	for _, tr := range rec.done() {
		b, err := json.Marshal(tr.Candidate)
		if err != nil {
			t.Fatal(err)
		}
		id, f, ok := teleprompt.FinishedFromRecord(b, *tr.Score)
		if !ok {
			t.Fatalf("trial %d does not read back", tr.Trial)
		}
		resume[id] = f
	}
	if len(resume) != first.Evaluations {
		t.Fatalf("%d trials recorded, %d evaluations", len(resume), first.Evaluations)
	}
	before := srv.Stats().DatasetHits
	opt.Resume = resume
	again, err := opt.Optimize(ctx, student, train[:6])
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.Stats().DatasetHits - before; n != 0 {
		t.Errorf("the resumed run answered %d dataset questions", n)
	}
	if again.Evaluations != 0 || again.Resumed != first.Evaluations {
		t.Errorf("resumed run: %d evaluations, %d resumed; want 0 and %d", again.Evaluations, again.Resumed, first.Evaluations)
	}
	if again.Best.ID != first.Best.ID || again.Best.Score != first.Best.Score {
		t.Errorf("resumed best %s %.1f, first %s %.1f", again.Best.ID, again.Best.Score, first.Best.ID, first.Best.Score)
	}
	got := again.Best.Program.NamedPredictors()[0].Predictor.Signature()
	if got.Instructions() != first.Best.Instruction || got.Output(got.NumOutputs()-1).Prefix != first.Best.Prefix {
		t.Errorf("resumed best program has %q / %q, want %q / %q", got.Instructions(), got.Output(got.NumOutputs()-1).Prefix,
			first.Best.Instruction, first.Best.Prefix)
	}
}

func TestCOPROErrors(t *testing.T) {
	ctx, train, _, _ := capitalsScripted(t, nil)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	em := metric.ExactMatch("answer")
	for _, tc := range []struct {
		name  string
		opt   *teleprompt.COPRO
		train []example.Example
		is    error
		want  string
	}{
		{"breadth 1", &teleprompt.COPRO{Metric: em, Breadth: 1}, train, teleprompt.ErrBreadth, "got 1"},
		{"negative breadth", &teleprompt.COPRO{Metric: em, Breadth: -3}, train, teleprompt.ErrBreadth, "got -3"},
		{"no metric", &teleprompt.COPRO{}, train, teleprompt.ErrNoMetric, "metric"},
		{"empty trainset", &teleprompt.COPRO{Metric: em}, nil, nil, "training set is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.opt.Compile(ctx, student, tc.train)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not match %v", err, tc.is)
			}
		})
	}
}
