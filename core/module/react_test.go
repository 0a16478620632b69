package module_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/pyjson"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/tool"
	"github.com/dspex/dspex/core/tool/tooltest"
)

// scriptLM answers each request with respond, recording the messages. It is
// the LM edge faked: everything above it (adapter, predictors, ReAct) is
// the real code.
type scriptLM struct {
	mu       sync.Mutex
	respond  func(call int, msgs []lm.Message) (string, error)
	requests [][]lm.Message
}

func (f *scriptLM) Model() string { return "fake" }

func (f *scriptLM) Complete(_ context.Context, req *lm.Request) (*lm.Response, error) {
	f.mu.Lock()
	call := len(f.requests)
	f.requests = append(f.requests, req.Messages)
	f.mu.Unlock()
	text, err := f.respond(call, req.Messages)
	if err != nil {
		return nil, err
	}
	return &lm.Response{Choices: []lm.Choice{{Text: text, FinishReason: "stop"}}, Usage: lm.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15}}, nil
}

// answers replies with the given completions in order, then fails.
func scripted(texts ...string) *scriptLM {
	return &scriptLM{respond: func(call int, _ []lm.Message) (string, error) {
		if call >= len(texts) {
			return "", fmt.Errorf("fake LM: unexpected call %d", call+1)
		}
		return texts[call], nil
	}}
}

// chat writes a ChatAdapter completion from name/value pairs; values other
// than strings are written as JSON.
func chatText(pairs ...any) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		v, ok := pairs[i+1].(string)
		if !ok {
			j, _ := json.Marshal(pairs[i+1])
			v = string(j)
		}
		fmt.Fprintf(&b, "[[ ## %s ## ]]\n%s\n\n", pairs[i], v)
	}
	return b.String() + "[[ ## completed ## ]]"
}

func reactText(thought, tool string, args any) string {
	return chatText("next_thought", thought, "next_tool_name", tool, "next_tool_args", args)
}

func lastUserMsg(msgs []lm.Message) string { return msgs[len(msgs)-1].Content }

// The prompts ReAct sends — instructions, tool list, field types, the
// trajectory's formatting, the extract step — equal DSPy 3.4.1's for the
// same signature, tools and LM answers.
func TestReActPromptsMatchDSPy(t *testing.T) {
	g := tooltest.LoadDSPyGolden(t)
	tools := tooltest.GoldenTools(t)
	sig := signature.MustParse("question, hints: list[str] -> answer, confidence: float").
		WithInstructions("Answer the question with the tools.")
	agent, err := module.NewReAct(sig, []*tool.Tool{tools["search_wikipedia"], tools["lookup"]})
	if err != nil {
		t.Fatal(err)
	}
	model := scripted(
		reactText("I should search.", "search_wikipedia", map[string]any{"query": "Go programming language"}),
		reactText("Look up the page.", "lookup", map[string]any{"limit": 40, "title": "Go"}),
		reactText("Done.", "finish", map[string]any{}),
		chatText("reasoning", "The page says Google.", "answer", "Google", "confidence", "0.9"),
	)
	ctx := module.WithAdapter(module.WithLM(context.Background(), model), &adapter.ChatAdapter{NoFallback: true})
	pred, err := agent.Forward(ctx, module.Inputs{"question": "Who designed Go?", "hints": []string{"it is a language", "think «Google»"}})
	if err != nil {
		t.Fatal(err)
	}

	if len(model.requests) != len(g.Requests) {
		t.Fatalf("%d requests, DSPy made %d", len(model.requests), len(g.Requests))
	}
	for i, want := range g.Requests {
		got := slices.Clone(model.requests[i])
		if len(got) != len(want) {
			t.Errorf("request %d: %d messages, DSPy sent %d", i, len(got), len(want))
			continue
		}
		for j := range want {
			if got[j].Role != want[j].Role {
				t.Errorf("request %d message %d: role %q, DSPy %q", i, j, got[j].Role, want[j].Role)
			}
			if diff := cmp.Diff(want[j].Content, got[j].Content); diff != "" {
				t.Errorf("request %d message %d differs from DSPy's (-dspy +go):\n%s", i, j, diff)
			}
		}
	}

	// State: the names, instructions and prefixes a DSPy state file holds.
	preds := agent.NamedPredictors()
	if len(preds) != len(g.State) {
		t.Fatalf("%d predictors, DSPy has %d", len(preds), len(g.State))
	}
	for _, np := range preds {
		want, ok := g.State[np.Name]
		if !ok {
			t.Errorf("predictor %q is not in DSPy's state", np.Name)
			continue
		}
		psig := np.Predictor.Signature()
		if diff := cmp.Diff(want.Instructions, psig.Instructions()); diff != "" {
			t.Errorf("%s instructions (-dspy +go):\n%s", np.Name, diff)
		}
		fields := psig.Fields()
		if len(fields) != len(want.Fields) {
			t.Errorf("%s: %d fields, DSPy has %d", np.Name, len(fields), len(want.Fields))
			continue
		}
		for i, f := range fields {
			if f.Prefix != want.Fields[i].Prefix {
				t.Errorf("%s field %s: prefix %q, DSPy %q", np.Name, f.Name, f.Prefix, want.Fields[i].Prefix)
			}
		}
	}

	// The prediction: outputs plus the trajectory, as DSPy's.
	if pred.String("answer") != g.Answer {
		t.Errorf("answer = %q, DSPy %q", pred.String("answer"), g.Answer)
	}
	if c, err := pred.Float("confidence"); err != nil || c != g.Confidence {
		t.Errorf("confidence = %v (%v), DSPy %v", c, err, g.Confidence)
	}
	traj, _ := pred.Get("trajectory")
	if diff := cmp.Diff(g.Trajectory, jsonRoundTrip(t, traj)); diff != "" {
		t.Errorf("trajectory (-dspy +go):\n%s", diff)
	}
	if pred.Usage.TotalTokens != 4*15 {
		t.Errorf("usage = %+v, want the sum of 4 calls", pred.Usage)
	}
}

func jsonRoundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

type WeatherArgs struct {
	City string `json:"city" desc:"the city's name"`
}

type ConvertArgs struct {
	Celsius float64 `json:"celsius"`
}

// toolLog records a tool's calls.
type toolLog struct {
	mu    sync.Mutex
	calls []string
}

func (r *toolLog) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

func (r *toolLog) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func weatherTools(t testing.TB, rec *toolLog) []*tool.Tool {
	weather := tooltest.MustTool(t, "get_weather", "Current weather in a city.", func(_ context.Context, a WeatherArgs) (any, error) {
		rec.add("get_weather(%s)", a.City)
		return "Sunny, 21 °C in " + a.City, nil
	})
	convert := tooltest.MustTool(t, "to_fahrenheit", "Converts Celsius to Fahrenheit.", func(_ context.Context, a ConvertArgs) (any, error) {
		rec.add("to_fahrenheit(%g)", a.Celsius)
		return a.Celsius*9/5 + 32, nil
	})
	return []*tool.Tool{weather, convert}
}

// The agent needs two different tools, one after the other, against the
// simulated LM over HTTP; the simulator's rules follow the trajectory.
func TestReActTwoToolsAgainstSimulator(t *testing.T) {
	for _, a := range []adapter.Adapter{&adapter.ChatAdapter{NoFallback: true}, adapter.JSONAdapter{}} {
		t.Run(a.Name(), func(t *testing.T) { testTwoTools(t, a) })
	}
}

func testTwoTools(t *testing.T, a adapter.Adapter) {
	extract := "starting with the field `[[ ## reasoning ## ]]`"
	if a.Name() == "JSONAdapter" {
		extract = "following order of fields: `reasoning`"
	}
	model := startSim(t, lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		{Match: extract, Fields: map[string]any{"reasoning": "It is 21 °C, which is 69.8 °F.", "answer": "69.8 °F"}},
		{Match: "[[ ## observation_1 ## ]]", Fields: map[string]any{"next_thought": "I have it.", "next_tool_name": "finish", "next_tool_args": map[string]any{}}},
		{Match: "[[ ## observation_0 ## ]]\nSunny, 21 °C in Paris", Fields: map[string]any{"next_thought": "Convert it.", "next_tool_name": "to_fahrenheit", "next_tool_args": map[string]any{"celsius": 21}}},
		{Match: "[[ ## trajectory ## ]]\n\n\n", Fields: map[string]any{"next_thought": "Check the weather.", "next_tool_name": "get_weather", "next_tool_args": map[string]any{"city": "Paris"}}},
	}}})
	rec := &toolLog{}
	agent, err := module.NewReAct(signature.MustParse("question -> answer"), weatherTools(t, rec))
	if err != nil {
		t.Fatal(err)
	}
	ctx := module.WithAdapter(module.WithLM(context.Background(), model), a)
	pred, err := agent.Forward(ctx, module.Inputs{"question": "How warm is Paris in Fahrenheit?"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"get_weather(Paris)", "to_fahrenheit(21)"}, rec.list()); diff != "" {
		t.Errorf("tool calls (-want +got):\n%s", diff)
	}
	if pred.String("answer") != "69.8 °F" || pred.String("reasoning") == "" {
		t.Errorf("prediction = %v", pred.Map())
	}
	traj, _ := pred.Get("trajectory")
	want := map[string]any{
		"thought_0": "Check the weather.", "tool_name_0": "get_weather", "tool_args_0": map[string]any{"city": "Paris"}, "observation_0": "Sunny, 21 °C in Paris",
		"thought_1": "Convert it.", "tool_name_1": "to_fahrenheit", "tool_args_1": map[string]any{"celsius": float64(21)}, "observation_1": 69.8,
		"thought_2": "I have it.", "tool_name_2": "finish", "tool_args_2": map[string]any{}, "observation_2": "Completed.",
	}
	if diff := cmp.Diff(want, jsonRoundTrip(t, traj)); diff != "" {
		t.Errorf("trajectory (-want +got):\n%s", diff)
	}
}

// An unknown tool name fails the Literal type with both adapters (the chat
// answer, then the JSON fallback); the agent is told and tries again.
func TestReActUnknownToolAgainstSimulator(t *testing.T) {
	model := startSim(t, lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "starting with the field `[[ ## reasoning ## ]]`", Fields: map[string]any{"reasoning": "r", "answer": "sunny"}},
		{Match: "[[ ## observation_1 ## ]]", Fields: map[string]any{"next_thought": "done", "next_tool_name": "finish", "next_tool_args": map[string]any{}}},
		{Match: "[[ ## observation_0 ## ]]", Fields: map[string]any{"next_thought": "use the real one", "next_tool_name": "get_weather", "next_tool_args": map[string]any{"city": "Oslo"}}},
		{Match: "", Fields: map[string]any{"next_thought": "search", "next_tool_name": "web_search", "next_tool_args": map[string]any{"q": "Oslo weather"}}},
	}}})
	rec := &toolLog{}
	agent, err := module.NewReAct(signature.MustParse("question -> answer"), weatherTools(t, rec))
	if err != nil {
		t.Fatal(err)
	}
	pred, err := agent.Forward(module.WithLM(context.Background(), model), module.Inputs{"question": "Weather in Oslo?"})
	if err != nil {
		t.Fatal(err)
	}
	traj := pred.Map()["trajectory"].(map[string]any)
	obs, _ := traj["observation_0"].(string)
	if !strings.HasPrefix(obs, `Execution error in web_search: there is no tool named "web_search"; the tool must be one of: get_weather, to_fahrenheit, finish`) {
		t.Errorf("observation_0 = %q", obs)
	}
	if traj["tool_name_0"] != "web_search" || pyjson.Dumps(traj["tool_args_0"], -1) != `{"q": "Oslo weather"}` {
		t.Errorf("step 0 = %v / %v", traj["tool_name_0"], traj["tool_args_0"])
	}
	if diff := cmp.Diff([]string{"get_weather(Oslo)"}, rec.list()); diff != "" || pred.String("answer") != "sunny" {
		t.Errorf("calls %v, answer %q", rec.list(), pred.String("answer"))
	}
}

// Failures of one step are shown to the LM as observations, and the loop
// goes on.
func TestReActToolFailuresBecomeObservations(t *testing.T) {
	finish := reactText("done", "finish", map[string]any{})
	extract := chatText("reasoning", "r", "answer", "a")
	cases := []struct {
		name       string
		answer     string // the first react answer
		want       string // observation_0, or its prefix when it ends in "…"
		wantCalled []string
	}{
		{
			name:   "unknown tool",
			answer: reactText("t", "web_search", map[string]any{"q": "x"}),
			want:   `Execution error in web_search: there is no tool named "web_search"; the tool must be one of: get_weather, to_fahrenheit, flaky, finish`,
		},
		{
			name:   "arguments are not JSON",
			answer: chatText("next_thought", "t", "next_tool_name", "get_weather", "next_tool_args", "city = Paris"),
			want:   "Execution error in get_weather: the arguments are not a JSON object: city = Paris",
		},
		{
			name:   "arguments are a JSON array",
			answer: chatText("next_thought", "t", "next_tool_name", "get_weather", "next_tool_args", `["Paris"]`),
			want:   `Execution error in get_weather: the arguments are not a JSON object: ["Paris"]`,
		},
		{
			name:   "unknown argument",
			answer: reactText("t", "get_weather", map[string]any{"town": "Paris"}),
			want:   `Execution error in get_weather: argument "town": not an argument of the tool (it takes arguments city)`,
		},
		{
			name:   "missing argument",
			answer: reactText("t", "get_weather", map[string]any{}),
			want:   `Execution error in get_weather: argument "city": required but missing`,
		},
		{
			name:   "wrong type",
			answer: reactText("t", "to_fahrenheit", map[string]any{"celsius": "warm"}),
			want:   `Execution error in to_fahrenheit: argument "celsius": expected float, got string "warm"`,
		},
		{
			name:       "tool error",
			answer:     reactText("t", "flaky", map[string]any{"mode": "error"}),
			want:       "Execution error in flaky: upstream timed out",
			wantCalled: []string{"flaky(error)"},
		},
		{
			name:       "tool panic",
			answer:     reactText("t", "flaky", map[string]any{"mode": "panic"}),
			want:       "Execution error in flaky: the tool panicked: runtime error: index out of range [3] with length 0",
			wantCalled: []string{"flaky(panic)"},
		},
		{
			name:   "arguments for finish",
			answer: reactText("t", "finish", map[string]any{"answer": "x"}),
			want:   `Execution error in finish: argument "answer": not an argument of the tool (it takes no arguments)`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &toolLog{}
			flaky := tooltest.MustTool(t, "flaky", "", func(_ context.Context, a struct {
				Mode string `json:"mode"`
			}) (any, error) {
				rec.add("flaky(%s)", a.Mode)
				if a.Mode == "panic" {
					var s []int
					return s[3], nil
				}
				return nil, errors.New("upstream timed out")
			})
			agent, err := module.NewReAct(signature.MustParse("question -> answer"), append(weatherTools(t, rec), flaky))
			if err != nil {
				t.Fatal(err)
			}
			texts := []string{c.answer, finish, extract}
			if c.name == "arguments for finish" {
				texts = []string{c.answer, extract}
			}
			model := scripted(texts...)
			ctx := module.WithAdapter(module.WithLM(context.Background(), model), &adapter.ChatAdapter{NoFallback: true})
			pred, err := agent.Forward(ctx, module.Inputs{"question": "q"})
			if err != nil {
				t.Fatal(err)
			}
			traj := pred.Map()["trajectory"].(map[string]any)
			if got := traj["observation_0"]; got != c.want {
				t.Errorf("observation_0 = %q\nwant           %q", got, c.want)
			}
			if diff := cmp.Diff(c.wantCalled, rec.list()); diff != "" {
				t.Errorf("tool calls (-want +got):\n%s", diff)
			}
			if len(model.requests) != len(texts) || pred.String("answer") != "a" {
				t.Errorf("%d LM calls, answer %q", len(model.requests), pred.String("answer"))
			}
			// The LM saw the failure in the next prompt.
			if len(model.requests) > 1 && !strings.Contains(lastUserMsg(model.requests[1]), "[[ ## observation_0 ## ]]\n"+c.want) {
				t.Errorf("next prompt lacks the observation:\n%s", lastUserMsg(model.requests[1]))
			}
		})
	}
}

func TestReActMaxIters(t *testing.T) {
	for _, c := range []struct {
		name  string
		opts  []module.ReActOption
		input any // max_iters input, nil for none
		want  int
	}{
		{name: "option", opts: []module.ReActOption{module.MaxIters(3)}, want: 3},
		{name: "input overrides option", opts: []module.ReActOption{module.MaxIters(3)}, input: 2, want: 2},
		{name: "default", want: module.DefaultMaxIters},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &toolLog{}
			agent, err := module.NewReAct(signature.MustParse("question -> answer"), weatherTools(t, rec), c.opts...)
			if err != nil {
				t.Fatal(err)
			}
			model := &scriptLM{respond: func(_ int, msgs []lm.Message) (string, error) {
				if strings.Contains(lastUserMsg(msgs), "`[[ ## reasoning ## ]]`") {
					return chatText("reasoning", "r", "answer", "unknown"), nil
				}
				return reactText("again", "get_weather", map[string]any{"city": "Rome"}), nil
			}}
			in := module.Inputs{"question": "q"}
			if c.input != nil {
				in["max_iters"] = c.input
			}
			pred, err := agent.Forward(module.WithLM(context.Background(), model), in)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(rec.list()); got != c.want {
				t.Errorf("%d tool calls, want %d", got, c.want)
			}
			traj := pred.Map()["trajectory"].(map[string]any)
			if len(traj) != 4*c.want || traj[fmt.Sprintf("observation_%d", c.want-1)] != "Sunny, 21 °C in Rome" {
				t.Errorf("trajectory has %d keys", len(traj))
			}
			if pred.String("answer") != "unknown" || len(model.requests) != c.want+1 {
				t.Errorf("answer %q after %d LM calls", pred.String("answer"), len(model.requests))
			}
		})
	}
	t.Run("bad input", func(t *testing.T) {
		agent, _ := module.NewReAct(signature.MustParse("question -> answer"), nil)
		_, err := agent.Forward(module.WithLM(context.Background(), scripted()), module.Inputs{"question": "q", "max_iters": "many"})
		if err == nil || !strings.Contains(err.Error(), "max_iters") {
			t.Errorf("err = %v", err)
		}
	})
}

func contextWindowError() error {
	return &lm.Error{Kind: lm.ErrContextWindow, Model: "fake", StatusCode: 400, Message: "maximum context length exceeded"}
}

// When the prompt outgrows the context window the oldest steps are
// dropped, for the react and the extract calls alike, as DSPy does.
func TestReActTruncatesTrajectoryOnContextWindowError(t *testing.T) {
	rec := &toolLog{}
	agent, err := module.NewReAct(signature.MustParse("question -> answer"), weatherTools(t, rec))
	if err != nil {
		t.Fatal(err)
	}
	cities := []string{"Rome", "Oslo", "Lima", "Kyiv", "Baku"}
	var reactCalls int
	model := &scriptLM{respond: func(_ int, msgs []lm.Message) (string, error) {
		user := lastUserMsg(msgs)
		// The "window" holds two steps.
		if strings.Count(user, "[[ ## observation_") > 2 {
			return "", contextWindowError()
		}
		if strings.Contains(user, "`[[ ## reasoning ## ]]`") {
			return chatText("reasoning", "r", "answer", "done"), nil
		}
		reactCalls++
		if reactCalls > len(cities) {
			return reactText("enough", "finish", map[string]any{}), nil
		}
		return reactText("next", "get_weather", map[string]any{"city": cities[reactCalls-1]}), nil
	}}
	pred, err := agent.Forward(module.WithLM(context.Background(), model), module.Inputs{"question": "q"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.list()) != len(cities) {
		t.Errorf("tool calls = %v", rec.list())
	}
	traj := pred.Map()["trajectory"].(map[string]any)
	// Steps 0..5 were taken (5 tools, then finish); only the last two fit.
	want := map[string]bool{"thought_4": true, "observation_4": true, "tool_name_5": true, "observation_5": true, "thought_3": false, "thought_0": false}
	for k, present := range want {
		if _, ok := traj[k]; ok != present {
			t.Errorf("trajectory has %s = %v, want %v (keys: %d)", k, ok, present, len(traj))
		}
	}
	if traj["observation_5"] != "Completed." || pred.String("answer") != "done" {
		t.Errorf("observation_5 = %v, answer %q", traj["observation_5"], pred.String("answer"))
	}
}

func TestReActContextWindowThatCannotBeCured(t *testing.T) {
	cases := []struct {
		name string
		// overflow reports whether a prompt is too long.
		overflow func(user string) bool
		wantErr  string
		wantCall int
	}{
		{
			// Every call overflows: the empty trajectory cannot shrink, the
			// loop ends at once, and extract fails the same way.
			name:     "every prompt",
			overflow: func(string) bool { return true },
			wantErr:  "cannot be truncated",
			wantCall: 2,
		},
		{
			// Only extract overflows, three times in a row although the
			// trajectory shrinks each time.
			name:     "extract after three truncations",
			overflow: func(user string) bool { return strings.Contains(user, "`[[ ## reasoning ## ]]`") },
			wantErr:  "even after 3 attempts",
			wantCall: 6 + 3,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			agent, _ := module.NewReAct(signature.MustParse("question -> answer"), weatherTools(t, &toolLog{}), module.MaxIters(6))
			model := &scriptLM{respond: func(_ int, msgs []lm.Message) (string, error) {
				if c.overflow(lastUserMsg(msgs)) {
					return "", contextWindowError()
				}
				return reactText("next", "get_weather", map[string]any{"city": "Rome"}), nil
			}}
			_, err := agent.Forward(module.WithLM(context.Background(), model), module.Inputs{"question": "q"})
			if !errors.Is(err, lm.ErrContextWindow) || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want lm.ErrContextWindow saying %q", err, c.wantErr)
			}
			if len(model.requests) != c.wantCall {
				t.Errorf("%d LM calls, want %d", len(model.requests), c.wantCall)
			}
		})
	}
}

func TestReActErrorsPropagate(t *testing.T) {
	t.Run("LM error", func(t *testing.T) {
		agent, _ := module.NewReAct(signature.MustParse("question -> answer"), nil)
		model := &scriptLM{respond: func(int, []lm.Message) (string, error) {
			return "", &lm.Error{Kind: lm.ErrAuth, StatusCode: 401}
		}}
		_, err := agent.Forward(module.WithLM(context.Background(), model), module.Inputs{"question": "q"})
		if !errors.Is(err, lm.ErrAuth) || len(model.requests) != 1 {
			t.Errorf("err = %v after %d calls", err, len(model.requests))
		}
	})
	t.Run("missing input", func(t *testing.T) {
		agent, _ := module.NewReAct(signature.MustParse("question -> answer"), nil)
		_, err := agent.Forward(module.WithLM(context.Background(), scripted()), module.Inputs{})
		if err == nil || !strings.Contains(err.Error(), `missing input field "question"`) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("context canceled by a tool", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stop := tooltest.MustTool(t, "stop", "", func(ctx context.Context, _ struct{}) (any, error) {
			cancel()
			return nil, ctx.Err()
		})
		agent, _ := module.NewReAct(signature.MustParse("question -> answer"), []*tool.Tool{stop})
		model := scripted(reactText("t", "stop", map[string]any{}), reactText("t", "finish", map[string]any{}))
		_, err := agent.Forward(module.WithLM(ctx, model), module.Inputs{"question": "q"})
		if !errors.Is(err, context.Canceled) || len(model.requests) != 1 {
			t.Errorf("err = %v after %d calls", err, len(model.requests))
		}
	})
	t.Run("unparsable answer ends the loop", func(t *testing.T) {
		// DSPy ends the trajectory when the agent's answer cannot be read
		// at all, and extracts the outputs from what it has.
		agent, _ := module.NewReAct(signature.MustParse("question -> answer"), nil)
		model := scripted("I will not follow the format.", chatText("reasoning", "r", "answer", "a"))
		ctx := module.WithAdapter(module.WithLM(context.Background(), model), &adapter.ChatAdapter{NoFallback: true})
		pred, err := agent.Forward(ctx, module.Inputs{"question": "q"})
		if err != nil {
			t.Fatal(err)
		}
		if traj := pred.Map()["trajectory"].(map[string]any); len(traj) != 0 || pred.String("answer") != "a" {
			t.Errorf("trajectory %v, answer %q", traj, pred.String("answer"))
		}
	})
}

func TestNewReActRefuses(t *testing.T) {
	rec := &toolLog{}
	tools := weatherTools(t, rec)
	cases := []struct {
		name  string
		sig   string
		tools []*tool.Tool
		opts  []module.ReActOption
		want  string
	}{
		{"duplicate tool", "question -> answer", []*tool.Tool{tools[0], tools[0]}, nil, `duplicate tool name "get_weather"`},
		{"nil tool", "question -> answer", []*tool.Tool{tools[0], nil}, nil, "tool 2 is nil"},
		{"trajectory input", "question, trajectory -> answer", tools, nil, `duplicate field name "trajectory"`},
		{"next_thought input", "question, next_thought -> answer", tools, nil, `duplicate field name "next_thought"`},
		{"zero max iters", "question -> answer", tools, []module.ReActOption{module.MaxIters(0)}, "max iters 0 is not positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := module.NewReAct(signature.MustParse(c.sig), c.tools, c.opts...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	if _, err := module.NewReAct(nil, tools); err == nil {
		t.Error("nil signature accepted")
	}
}

func TestReActProgram(t *testing.T) {
	tools := weatherTools(t, &toolLog{})
	agent, err := module.NewReAct(signature.MustParse("question -> answer"), tools)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, np := range agent.NamedPredictors() {
		names = append(names, np.Name)
	}
	if diff := cmp.Diff([]string{"react", "extract.predict"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if got := agent.React.Signature().Output(1).Type.PythonName(); got != "Literal['get_weather', 'to_fahrenheit', 'finish']" {
		t.Errorf("next_tool_name type = %s", got)
	}
	if got := agent.React.Signature().Output(2).Type.PythonName(); got != "dict[str, Any]" {
		t.Errorf("next_tool_args type = %s", got)
	}
	if got := agent.Extract.Predict.Signature().String(); got != "question, trajectory -> reasoning, answer" {
		t.Errorf("extract signature = %s", got)
	}

	clone := module.CloneAs(agent)
	clone.React.SetSignature(clone.React.Signature().WithInstructions("Be brief."))
	clone.Extract.Predict.SetSignature(clone.Extract.Predict.Signature().WithInstructions("Answer."))
	if agent.React.Signature().Instructions() == "Be brief." || agent.Extract.Predict.Signature().Instructions() == "Answer." {
		t.Error("the clone shares predictors with the original")
	}
	if clone.React == agent.React || len(clone.Tools()) != 2 || clone.Tools()[0] != tools[0] {
		t.Error("clone: tools should be shared, predictors copied")
	}
	if diff := cmp.Diff([]string{"question"}, agent.InputNames()); diff != "" {
		t.Error(diff)
	}

	// An optimizer's new instructions are what the LM sees.
	model := scripted(reactText("t", "finish", map[string]any{}), chatText("reasoning", "r", "answer", "a"))
	if _, err := clone.Forward(module.WithLM(context.Background(), model), module.Inputs{"question": "q"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(model.requests[0][0].Content, "        Be brief.") || !strings.Contains(model.requests[1][0].Content, "        Answer.") {
		t.Errorf("system messages do not carry the new instructions")
	}
}

func TestReActTraced(t *testing.T) {
	bus := event.NewBus()
	var mu sync.Mutex
	var modules []string
	bus.Subscribe(event.SubscribeOptions{Kinds: []event.Kind{event.ModuleStart}}, func(ev event.Event) {
		mu.Lock()
		modules = append(modules, ev.Data.(*event.ModuleCall).Module)
		mu.Unlock()
	})
	agent, _ := module.NewReAct(signature.MustParse("question -> answer"), nil)
	model := scripted(reactText("t", "finish", map[string]any{}), chatText("reasoning", "r", "answer", "a"))
	ctx := module.WithLM(event.WithBus(context.Background(), bus), model)
	if _, err := agent.Forward(ctx, module.Inputs{"question": "q"}); err != nil {
		t.Fatal(err)
	}
	bus.Close()
	if diff := cmp.Diff([]string{"ReAct", "Predict", "ChainOfThought", "Predict"}, modules); diff != "" {
		t.Errorf("module spans (-want +got):\n%s", diff)
	}
}

// One agent serves many goroutines; each Forward has its own trajectory.
func TestReActConcurrent(t *testing.T) {
	rec := &toolLog{}
	agent, err := module.NewReAct(signature.MustParse("question -> answer"), weatherTools(t, rec))
	if err != nil {
		t.Fatal(err)
	}
	model := &scriptLM{respond: func(_ int, msgs []lm.Message) (string, error) {
		user := lastUserMsg(msgs)
		city := strings.TrimSpace(strings.SplitN(strings.SplitN(user, "[[ ## question ## ]]\n", 2)[1], "\n", 2)[0])
		switch {
		case strings.Contains(user, "`[[ ## reasoning ## ]]`"):
			return chatText("reasoning", "r", "answer", "weather in "+city), nil
		case strings.Contains(user, "[[ ## observation_0 ## ]]"):
			return reactText("done", "finish", map[string]any{}), nil
		}
		return reactText("look", "get_weather", map[string]any{"city": city}), nil
	}}
	ctx := module.WithLM(context.Background(), model)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			city := fmt.Sprintf("City%d", i)
			pred, err := agent.Forward(ctx, module.Inputs{"question": city})
			if err != nil {
				errs <- err
				return
			}
			traj := pred.Map()["trajectory"].(map[string]any)
			if pred.String("answer") != "weather in "+city || traj["observation_0"] != "Sunny, 21 °C in "+city {
				errs <- fmt.Errorf("%s: answer %q, observation %v", city, pred.String("answer"), traj["observation_0"])
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(rec.list()) != 16 {
		t.Errorf("%d tool calls", len(rec.list()))
	}
}

func ExampleNewReAct() {
	type args struct {
		City string `json:"city"`
	}
	weather, _ := tool.New("get_weather", "Current weather in a city.", func(_ context.Context, a args) (any, error) {
		return "Sunny in " + a.City, nil
	})
	srv, _ := lmtest.Start(context.Background(), lmtest.Config{Script: &lmtest.Script{Rules: []lmtest.Rule{
		{Match: "`[[ ## reasoning ## ]]`", Fields: map[string]any{"reasoning": "The tool said so.", "answer": "sunny"}},
		{Match: "[[ ## observation_0 ## ]]", Fields: map[string]any{"next_thought": "Done.", "next_tool_name": "finish", "next_tool_args": map[string]any{}}},
		{Match: "", Fields: map[string]any{"next_thought": "Ask the tool.", "next_tool_name": "get_weather", "next_tool_args": map[string]any{"city": "Lisbon"}}},
	}}})
	defer srv.Close()
	model, _ := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "UNSET_KEY"})

	agent, _ := module.NewReAct(signature.MustParse("question -> answer"), []*tool.Tool{weather}, module.MaxIters(5))
	pred, err := agent.Forward(module.WithLM(context.Background(), model), module.Inputs{"question": "Weather in Lisbon?"})
	if err != nil {
		fmt.Println(err)
		return
	}
	traj := pred.Map()["trajectory"].(map[string]any)
	fmt.Println(traj["observation_0"])
	fmt.Println(pred.String("answer"))
	// Output:
	// Sunny in Lisbon
	// sunny
}
