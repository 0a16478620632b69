package lm

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// keyRequests are requests whose canonical forms must be byte for byte
// what encoding/json writes.
func keyRequests() []*Request {
	f := func(v float64) *float64 { return &v }
	i := func(v int) *int { return &v }
	i64 := func(v int64) *int64 { return &v }
	schema := json.RawMessage(`{ "type": "object", "properties": {"a<b>&c": {"type": "string"}} }`)
	return []*Request{
		{},
		{Messages: []Message{}},
		{Messages: []Message{{Role: RoleUser, Content: "hi"}}},
		{Messages: []Message{
			{Role: RoleSystem, Content: "Your input fields are:\n1. `question` (str)\n\t\"quoted\" \\ back"},
			{Role: RoleUser, Content: "[[ ## question ## ]]\nWhat is 2 < 3 && 4 > 1?\n\nRespond with [[ ## answer ## ]]."},
			{Role: RoleAssistant, Content: "café ünïcode 日本語 🎉 \u2028 line \u2029 para \x00\x01\x1f\x7f \b\f\r"},
		}},
		{Messages: []Message{{Role: RoleUser, Content: "bad \xff\xfe utf-8 \xe2\x82 cut"}}},
		{Params: Params{Temperature: f(0)}},
		{Params: Params{Temperature: f(0.7), MaxTokens: i(256), TopP: f(1), N: i(3), Stop: []string{"\n\n", "<end>"}, Seed: i64(-42)}},
		{Params: Params{Temperature: f(1e-7), TopP: f(1e21)}},
		{Params: Params{Temperature: f(math.Copysign(0, -1)), TopP: f(123456789.125)}},
		{Params: Params{Temperature: f(1e-6), TopP: f(9.999999e20)}},
		{Params: Params{Temperature: f(5e-324), TopP: f(math.MaxFloat64)}},
		{Params: Params{Stop: []string{}}},
		{Params: Params{Extra: map[string]any{"logprobs": true, "top_k": 5}}},
		{Params: Params{Temperature: f(math.NaN())}},
		{Params: Params{TopP: f(math.Inf(1))}},
		{ResponseFormat: &ResponseFormat{Type: "json_object"}},
		{ResponseFormat: &ResponseFormat{Type: "json_schema", Name: "answer", Strict: true, Schema: schema}},
		{ResponseFormat: &ResponseFormat{Type: "json_schema", Schema: json.RawMessage(`{bad`)}},
		{RolloutID: "rollout-<1>"},
		{Model: "ignored: the model argument wins", RolloutID: "r"},
	}
}

// randomRequest builds a request from r: messages of random text (ASCII,
// escapes, multi-byte runes, invalid bytes), random params.
func randomRequest(r *rand.Rand) *Request {
	pieces := []string{"a", "Z", " ", "\n", "\t", "\"", "\\", "<", ">", "&", "é", "日", "🎉", "\u2028", "\u2029",
		"\x00", "\x1f", "\x7f", "\xff", "\xe2\x82", "[[ ## answer ## ]]", "\r", "\b", "\f", "/"}
	text := func() string {
		var sb strings.Builder
		for range r.IntN(40) {
			sb.WriteString(pieces[r.IntN(len(pieces))])
		}
		return sb.String()
	}
	req := &Request{}
	roles := []string{RoleSystem, RoleUser, RoleAssistant, text()}
	for range r.IntN(5) {
		req.Messages = append(req.Messages, Message{Role: roles[r.IntN(len(roles))], Content: text()})
	}
	floats := []float64{0, 1, 0.5, 0.1, 1e-7, 1.5e-6, 2e21, 1e20, -3.25, 0.30000000000000004, r.Float64() * 100, r.NormFloat64() * 1e-8}
	if r.IntN(2) == 0 {
		req.Params.Temperature = &floats[r.IntN(len(floats))]
	}
	if r.IntN(2) == 0 {
		req.Params.TopP = &floats[r.IntN(len(floats))]
	}
	if r.IntN(2) == 0 {
		n := r.IntN(5000) - 100
		req.Params.MaxTokens = &n
	}
	if r.IntN(3) == 0 {
		n := r.IntN(8)
		req.Params.N = &n
	}
	if r.IntN(3) == 0 {
		s := r.Int64() - r.Int64()
		req.Params.Seed = &s
	}
	for range r.IntN(3) {
		req.Params.Stop = append(req.Params.Stop, text())
	}
	if r.IntN(8) == 0 {
		req.ResponseFormat = &ResponseFormat{Type: "json_schema", Name: text(), Strict: r.IntN(2) == 0,
			Schema: json.RawMessage(`{"type": "object", "title": "<T>"}`)}
	}
	if r.IntN(4) == 0 {
		req.RolloutID = text()
	}
	return req
}

// TestCanonicalMatchesEncodingJSON: the hand-written canonical form is the
// bytes encoding/json writes, so cache entries keyed before it stay valid.
func TestCanonicalMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, model string, req *Request) {
		t.Helper()
		want, wantErr := canonicalJSON(model, req)
		got, gotErr := canonical(model, req)
		if (wantErr == nil) != (gotErr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("canonical form of %+v:\ngot  %s (%v)\nwant %s (%v)", req, got, gotErr, want, wantErr)
		}
	}
	for _, req := range keyRequests() {
		check(t, "gpt-4o-mini", req)
		check(t, "<model & co>\u2028", req)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		check(t, "m", randomRequest(r))
	}
}

// TestRequestKeyPinned: the key of a fixed request never changes, whatever
// encodes it.
func TestRequestKeyPinned(t *testing.T) {
	t.Parallel()
	temp, maxTokens := 0.0, 100
	req := &Request{
		Messages: []Message{{Role: RoleSystem, Content: "Answer <briefly>."}, {Role: RoleUser, Content: "2+2?\n"}},
		Params:   Params{Temperature: &temp, MaxTokens: &maxTokens, Stop: []string{"\n"}},
	}
	const want = "48d686787764afa2fb0625fd330bc562d8fd69bc572d5935a57cce950fb1b4b1" // as RequestKey gave before the hand-written encoder
	if got := RequestKey("gpt-4o-mini", req); got != want {
		t.Errorf("RequestKey = %s, want %s", got, want)
	}
}

// FuzzCanonical: for any messages, model and rollout id, the hand-written
// canonical form equals encoding/json's.
func FuzzCanonical(f *testing.F) {
	f.Add("m", "system", "hello\n<world>", "r", 0.5)
	f.Add("", "", "\xff\u2028\x00", "", 1e-7)
	f.Fuzz(func(t *testing.T, model, role, content, rollout string, temp float64) {
		req := &Request{Messages: []Message{{Role: role, Content: content}}, RolloutID: rollout,
			Params: Params{Temperature: &temp, Stop: []string{content}}}
		want, wantErr := canonicalJSON(model, req)
		got, gotErr := canonical(model, req)
		if (wantErr == nil) != (gotErr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("got %q (%v), want %q (%v)", got, gotErr, want, wantErr)
		}
	})
}

// TestRequestKeyAllocations bounds a key's allocations: the canonical
// form and the hex string.
func TestRequestKeyAllocations(t *testing.T) {
	temp := 0.0
	req := &Request{
		Messages: []Message{{Role: RoleSystem, Content: strings.Repeat("Your input fields are:\n", 50)}, {Role: RoleUser, Content: "q\n"}},
		Params:   Params{Temperature: &temp},
	}
	allocs := testing.AllocsPerRun(100, func() { _ = RequestKey("m", req) })
	if allocs > 2 {
		t.Errorf("RequestKey allocates %.0f times, want at most 2", allocs)
	}
}

func BenchmarkRequestKey(b *testing.B) {
	temp := 0.0
	req := &Request{
		Messages: []Message{{Role: RoleSystem, Content: strings.Repeat("Your input fields are:\n1. `question` (str)\n", 40)}, {Role: RoleUser, Content: "[[ ## question ## ]]\nWhat is two plus two?"}},
		Params:   Params{Temperature: &temp},
	}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b, _ := canonical("m", req)
			_ = requestKey(b)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b, _ := canonicalJSON("m", req)
			_ = requestKey(b)
		}
	})
}
