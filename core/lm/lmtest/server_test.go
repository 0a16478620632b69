package lmtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dspex/dspex/core/pyjson"
)

func TestChatPlaceholders(t *testing.T) {
	s := startServer(t, Config{Seed: 1})
	r := complete(t, s, qaBody(nil))
	if r.Object != "chat.completion" || r.Model != "test-model" || r.Choices[0].FinishReason != "stop" {
		t.Errorf("envelope = %+v", r)
	}
	text := r.Choices[0].Message.Content
	names, vals := sections(text)
	want := []string{"reasoning", "answer", "confidence", "tags", "label", "summary", "count", "flag", "maybe", "scores", "people", "completed"}
	if !slices.Equal(names, want) {
		t.Fatalf("markers = %v, want %v\n%s", names, want, text)
	}
	if !strings.HasSuffix(text, "[[ ## completed ## ]]\n") {
		t.Errorf("completion does not end with the completed marker: %q", text)
	}
	if !strings.Contains(vals["answer"], "answer") || !strings.Contains(vals["answer"], "capital of France") {
		t.Errorf("answer placeholder should name the field and quote the input: %q", vals["answer"])
	}
	// Whichever wording the seed picks, a placeholder says it is simulated,
	// and every wording turns up.
	wordings := map[string]bool{}
	for seed := range int64(24) {
		_, vals := sections(complete(t, s, qaBody(map[string]any{"seed": seed})).Choices[0].Message.Content)
		answer := vals["answer"]
		if !strings.Contains(strings.ToLower(answer), "simulated") {
			t.Errorf("seed %d: placeholder %q does not say it is simulated", seed, answer)
		}

		wordings[strings.Fields(answer)[0]] = true
	}
	if len(wordings) != 3 {
		t.Errorf("placeholder wordings seen: %v; want all three", wordings)
	}
	// A short question is quoted without the output request DSPy appends.
	short := chatBody(chatSystem(qaInputs, qaOutputs), userMessage("Who wrote Hamlet?"), nil)
	if _, vals := sections(complete(t, s, short).Choices[0].Message.Content); !strings.Contains(vals["answer"], "'Who wrote Hamlet?'") {
		t.Errorf("placeholder %q does not quote the short question alone", vals["answer"])
	}
	if f, err := strconv.ParseFloat(vals["confidence"], 64); err != nil || f < 0 || f > 1 {
		t.Errorf("confidence = %q (%v)", vals["confidence"], err)
	}
	if n, err := strconv.Atoi(vals["count"]); err != nil || n < 1 || n > 10 {
		t.Errorf("count = %q", vals["count"])
	}
	if vals["flag"] != "True" && vals["flag"] != "False" {
		t.Errorf("flag = %q, want Python bool", vals["flag"])
	}
	if _, err := strconv.Atoi(vals["maybe"]); err != nil {
		t.Errorf("maybe (Optional[int]) = %q", vals["maybe"])
	}
	if vals["label"] != "yes" && vals["label"] != "no" {
		t.Errorf("label = %q", vals["label"])
	}
	var tags []string
	if err := json.Unmarshal([]byte(vals["tags"]), &tags); err != nil || len(tags) < 1 || len(tags) > 3 {
		t.Errorf("tags = %q (%v)", vals["tags"], err)
	}
	var summary struct {
		Headline *string  `json:"headline"`
		Score    *float64 `json:"score"`
	}
	if err := json.Unmarshal([]byte(vals["summary"]), &summary); err != nil || summary.Headline == nil || summary.Score == nil {
		t.Errorf("summary = %q (%v)", vals["summary"], err)
	}
	var scores map[string]float64
	if err := json.Unmarshal([]byte(vals["scores"]), &scores); err != nil || len(scores) == 0 {
		t.Errorf("scores = %q (%v)", vals["scores"], err)
	}
	var people []struct {
		Name    string `json:"name"`
		Age     *int   `json:"age"`
		Address *struct {
			City string `json:"city"`
			Zip  *int   `json:"zip"`
		} `json:"address"`
		Nickname *string `json:"nickname"`
	}
	dec := json.NewDecoder(strings.NewReader(vals["people"]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&people); err != nil || len(people) == 0 {
		t.Fatalf("people = %q (%v)", vals["people"], err)
	}
	for _, p := range people {
		if p.Name == "" || p.Age == nil || *p.Age < 18 || *p.Age > 120 || p.Address == nil || p.Address.Zip == nil || p.Nickname == nil {
			t.Errorf("person = %+v from %s", p, vals["people"])
		}
	}
}

func TestJSONMode(t *testing.T) {
	s := startServer(t, Config{})
	check := func(t *testing.T, text string) {
		t.Helper()
		v, err := pyjson.Decode([]byte(text))
		if err != nil {
			t.Fatalf("not JSON: %v\n%s", err, text)
		}
		obj, ok := v.(pyjson.Object)
		if !ok || len(obj) != len(qaOutputs) {
			t.Fatalf("got %T with %d keys: %s", v, len(obj), text)
		}
		for i, m := range obj {
			if m.Key != qaOutputs[i].name {
				t.Errorf("key %d = %q, want %q", i, m.Key, qaOutputs[i].name)
			}
		}
		get := func(k string) any { v, _ := obj.Get(k); return v }
		if _, ok := get("confidence").(float64); !ok {
			t.Errorf("confidence = %#v, want float", get("confidence"))
		}
		if _, ok := get("count").(int64); !ok {
			t.Errorf("count = %#v, want int", get("count"))
		}
		if _, ok := get("flag").(bool); !ok {
			t.Errorf("flag = %#v, want bool", get("flag"))
		}
		if _, ok := get("tags").([]any); !ok {
			t.Errorf("tags = %#v, want list", get("tags"))
		}
		if _, ok := get("summary").(pyjson.Object); !ok {
			t.Errorf("summary = %#v, want object", get("summary"))
		}
		if l := get("label"); l != "yes" && l != "no" {
			t.Errorf("label = %#v", l)
		}
	}
	t.Run("json adapter prompt", func(t *testing.T) {
		body := chatBody(jsonSystem(qaInputs, qaOutputs), userMessage("Why?"), nil)
		check(t, complete(t, s, body).Choices[0].Message.Content)
	})
	t.Run("response_format on a chat prompt", func(t *testing.T) {
		body := qaBody(map[string]any{"response_format": map[string]any{"type": "json_object"}})
		check(t, complete(t, s, body).Choices[0].Message.Content)
	})
	t.Run("json_schema without a DSPy prompt", func(t *testing.T) {
		body := chatBody("Be terse.", "hello", map[string]any{"response_format": map[string]any{
			"type": "json_schema",
			"json_schema": map[string]any{"name": "out", "schema": map[string]any{
				"type": "object", "properties": map[string]any{"n": map[string]any{"type": "integer"}}}},
		}})
		text := complete(t, s, body).Choices[0].Message.Content
		var out struct{ N *int }
		if err := json.Unmarshal([]byte(text), &out); err != nil || out.N == nil {
			t.Errorf("got %s (%v)", text, err)
		}
	})
}

func TestUnknownPromptIsPlainText(t *testing.T) {
	s := startServer(t, Config{})
	body := map[string]any{"model": "m", "messages": []map[string]any{{"role": "user", "content": "Hi there"}}}
	text := complete(t, s, body).Choices[0].Message.Content
	if !strings.HasPrefix(text, "This is a simulated response") {
		t.Errorf("got %q", text)
	}
	// Content given as an array of parts works the same.
	body = map[string]any{"model": "m", "messages": []map[string]any{{"role": "user", "content": []map[string]any{{"type": "text", "text": "Hi there"}}}}}
	if got := complete(t, s, body).Choices[0].Message.Content; got != text {
		t.Errorf("content parts answer %q, want %q", got, text)
	}
}

func TestDeterminism(t *testing.T) {
	a := startServer(t, Config{Seed: 5})
	b := startServer(t, Config{Seed: 5})
	c := startServer(t, Config{Seed: 6})
	body := qaBody(nil)
	_, first := post(t, a.URL()+"/chat/completions", body)
	_, again := post(t, a.URL()+"/chat/completions", body)
	_, other := post(t, b.URL()+"/chat/completions", body)
	if !bytes.Equal(first, again) || !bytes.Equal(first, other) {
		t.Errorf("same request, same seed gave different bodies:\n%s\n%s\n%s", first, again, other)
	}
	_, diffServerSeed := post(t, c.URL()+"/chat/completions", body)
	_, diffReqSeed := post(t, a.URL()+"/chat/completions", qaBody(map[string]any{"seed": 42}))
	content := func(b []byte) string {
		var r testResponse
		_ = json.Unmarshal(b, &r)
		return r.Choices[0].Message.Content
	}
	if content(first) == content(diffServerSeed) {
		t.Error("different server seed gave the same answer")
	}
	if content(first) == content(diffReqSeed) {
		t.Error("different request seed gave the same answer")
	}
}

func TestNChoices(t *testing.T) {
	s := startServer(t, Config{})
	r := complete(t, s, qaBody(map[string]any{"n": 3, "seed": 10}))
	if len(r.Choices) != 3 {
		t.Fatalf("got %d choices", len(r.Choices))
	}
	seen := map[string]bool{}
	for i, c := range r.Choices {
		if c.Index != i {
			t.Errorf("choice %d has index %d", i, c.Index)
		}
		seen[c.Message.Content] = true
	}
	if len(seen) != 3 {
		t.Error("placeholder choices do not differ")
	}
	// Choice i uses seed+i.
	r2 := complete(t, s, qaBody(map[string]any{"seed": 12}))
	if r2.Choices[0].Message.Content != r.Choices[2].Message.Content {
		t.Error("choice 2 with seed 10 differs from choice 0 with seed 12")
	}
	wantTokens := 0
	for _, c := range r.Choices {
		wantTokens += tokens(len([]rune(c.Message.Content)))
	}
	if r.Usage.CompletionTokens != wantTokens {
		t.Errorf("completion tokens = %d, want %d (sum over choices)", r.Usage.CompletionTokens, wantTokens)
	}
}

func TestUsage(t *testing.T) {
	s := startServer(t, Config{})
	body := qaBody(nil)
	r := complete(t, s, body)
	msgs := body["messages"].([]map[string]any)
	chars := 0
	for _, m := range msgs {
		chars += len([]rune(m["content"].(string)))
	}
	want := usage{PromptTokens: (chars + 3) / 4, CompletionTokens: (len([]rune(r.Choices[0].Message.Content)) + 3) / 4}
	want.TotalTokens = want.PromptTokens + want.CompletionTokens
	if r.Usage != want {
		t.Errorf("usage = %+v, want %+v", r.Usage, want)
	}
	st := s.Stats()
	if st.Requests != 1 || st.Completions != 1 || st.PromptTokens != int64(want.PromptTokens) {
		t.Errorf("stats = %+v", st)
	}
	if tokens(0) != 1 || tokens(4) != 1 || tokens(5) != 2 {
		t.Error("tokens rule: ceil(chars/4), at least 1")
	}
}

func TestMaxTokensAndStop(t *testing.T) {
	s := startServer(t, Config{})
	r := complete(t, s, qaBody(map[string]any{"max_tokens": 5}))
	if c := r.Choices[0]; c.FinishReason != "length" || len([]rune(c.Message.Content)) != 20 {
		t.Errorf("max_tokens 5: finish %q, %d chars", c.FinishReason, len([]rune(c.Message.Content)))
	}
	r = complete(t, s, qaBody(map[string]any{"stop": "[[ ## answer"}))
	if c := r.Choices[0].Message.Content; strings.Contains(c, "answer ##") || !strings.HasPrefix(c, "[[ ## reasoning ## ]]") {
		t.Errorf("stop not applied: %q", c)
	}
}

func TestScript(t *testing.T) {
	script := &Script{Rules: []Rule{
		{Match: "once", Fields: map[string]any{"answer": "first time"}, Times: 1},
		{Match: "once", Fields: map[string]any{"answer": "later"}},
		{Match: "broken", Raw: "no markers at all"},
		{Match: "SYSTEM-ONLY", MatchAnyMessage: true, Fields: map[string]any{"answer": "from system"}},
		{Match: "typed", Fields: map[string]any{
			"confidence": 0.25, "flag": true, "tags": []any{"a", "b"}, "count": "7",
			"summary": pyjson.Object{{Key: "headline", Value: "H"}, {Key: "score", Value: 1}},
		}},
	}}
	s := startServer(t, Config{Script: script})
	ask := func(question string, extra map[string]any) (string, map[string]string) {
		t.Helper()
		text := complete(t, s, chatBody(chatSystem(qaInputs, qaOutputs), userMessage(question), extra)).Choices[0].Message.Content
		_, vals := sections(text)
		return text, vals
	}
	if _, v := ask("do it once", nil); v["answer"] != "first time" {
		t.Errorf("first use: answer %q", v["answer"])
	}
	if _, v := ask("do it once", nil); v["answer"] != "later" {
		t.Errorf("after times ran out: answer %q", v["answer"])
	}
	if text, _ := ask("broken please", nil); text != "no markers at all" {
		t.Errorf("raw: %q", text)
	}
	if _, v := ask("what?", nil); strings.Contains(v["answer"], "from system") {
		t.Error("match_any_message rule matched although its text is in no message")
	}
	sys := chatSystem(qaInputs, qaOutputs) + "\nSYSTEM-ONLY"
	text := complete(t, s, chatBody(sys, userMessage("q"), nil)).Choices[0].Message.Content
	if _, v := sections(text); v["answer"] != "from system" {
		t.Errorf("match_any_message: answer %q", v["answer"])
	}
	_, v := ask("typed values", nil)
	want := map[string]string{
		"confidence": "0.25", "flag": "True", "tags": `["a", "b"]`, "count": "7",
		"summary": `{"headline": "H", "score": 1}`,
	}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("chat %s = %q, want %q", k, v[k], w)
		}
	}
	if v["reasoning"] == "" {
		t.Error("unscripted field got no placeholder")
	}
	jsonText := complete(t, s, chatBody(jsonSystem(qaInputs, qaOutputs), userMessage("typed values"), nil)).Choices[0].Message.Content
	var out struct {
		Confidence float64  `json:"confidence"`
		Count      int      `json:"count"`
		Flag       bool     `json:"flag"`
		Tags       []string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(jsonText), &out); err != nil || out.Count != 7 || out.Confidence != 0.25 || !out.Flag || len(out.Tags) != 2 {
		t.Errorf("JSON mode scripted values: %+v (%v)\n%s", out, err, jsonText)
	}
	if st := s.Stats(); st.ScriptHits != 6 {
		t.Errorf("script hits = %d, want 6", st.ScriptHits)
	}
	if reqs := s.Requests(); len(reqs) != 7 || reqs[0].Rule != 0 || reqs[1].Rule != 1 || reqs[3].Rule != -1 {
		t.Errorf("recorded rules: %+v", reqs)
	}
}

// stream posts a streaming request and returns the data payloads.
func stream(t *testing.T, s *Server, body map[string]any) []string {
	t.Helper()
	resp, data := post(t, s.URL()+"/chat/completions", body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var events []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, d)
		}
	}
	return events
}

func TestStreaming(t *testing.T) {
	s := startServer(t, Config{})
	plain := complete(t, s, qaBody(map[string]any{"n": 2}))
	events := stream(t, s, qaBody(map[string]any{"n": 2, "stream": true, "stream_options": map[string]any{"include_usage": true}}))
	if len(events) < 4 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("events = %v", events)
	}
	texts := make([]strings.Builder, 2)
	finishes := make([]string, 2)
	var gotUsage *usage
	for _, e := range events[:len(events)-1] {
		var c chunk
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatalf("chunk %q: %v", e, err)
		}
		if c.Object != "chat.completion.chunk" || c.ID != plain.ID {
			t.Errorf("chunk envelope: %+v (want id %s)", c, plain.ID)
		}
		if c.Usage != nil {
			gotUsage = c.Usage
		}
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				if n := len([]rune(*ch.Delta.Content)); n > chunkRunes {
					t.Errorf("piece of %d characters", n)
				}
				texts[ch.Index].WriteString(*ch.Delta.Content)
			}
			if ch.FinishReason != nil {
				finishes[ch.Index] = *ch.FinishReason
			}
		}
	}
	for i := range 2 {
		if texts[i].String() != plain.Choices[i].Message.Content {
			t.Errorf("choice %d: streamed %q, want %q", i, texts[i].String(), plain.Choices[i].Message.Content)
		}
		if finishes[i] != "stop" {
			t.Errorf("choice %d finish = %q", i, finishes[i])
		}
	}
	if gotUsage == nil || *gotUsage != plain.Usage {
		t.Errorf("usage chunk = %+v, want %+v", gotUsage, plain.Usage)
	}
	// Without include_usage there is no usage chunk.
	for _, e := range stream(t, s, qaBody(map[string]any{"stream": true})) {
		if strings.Contains(e, `"usage"`) {
			t.Errorf("unexpected usage in %s", e)
		}
	}
}

func TestErrorFaults(t *testing.T) {
	tests := []struct {
		spec       string
		status     int
		retryAfter string
		errType    string
	}{
		{"429", 429, "1", "rate_limit_error"},
		{"429:retry_after=2500ms", 429, "3", "rate_limit_error"},
		{"500", 500, "", "server_error"},
		{"502", 502, "", "server_error"},
		{"503", 503, "", "server_error"},
		{"503:retry_after=4", 503, "4", "server_error"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			f, err := ParseFault(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			s := startServer(t, Config{Faults: []Fault{f}})
			resp, data := post(t, s.URL()+"/chat/completions", qaBody(nil))
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.retryAfter)
			}
			var e apiError
			if err := json.Unmarshal(data, &e); err != nil || e.Error.Type != tt.errType || !strings.Contains(e.Error.Message, "simulated") {
				t.Errorf("error body %s (%v)", data, err)
			}
			if got := s.Stats().Faults[f.Kind]; got != 1 {
				t.Errorf("fault count = %d", got)
			}
		})
	}
}

func TestContentFaults(t *testing.T) {
	t.Run("malformed", func(t *testing.T) {
		s := startServer(t, Config{Faults: []Fault{{Kind: FaultMalformed, Rate: 1}}})
		resp, data := post(t, s.URL()+"/chat/completions", qaBody(nil))
		if resp.StatusCode != 200 || json.Valid(data) {
			t.Errorf("status %d, valid JSON %v: %s", resp.StatusCode, json.Valid(data), data)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		s := startServer(t, Config{Faults: []Fault{{Kind: FaultTruncated, Rate: 1}}})
		full := startServer(t, Config{})
		r := complete(t, s, qaBody(nil))
		want := complete(t, full, qaBody(nil)).Choices[0].Message.Content
		got := r.Choices[0].Message.Content
		if r.Choices[0].FinishReason != "length" || strings.Contains(got, completedMarker) || !strings.HasPrefix(want, got) ||
			len([]rune(got)) != len([]rune(want))/2 {
			t.Errorf("truncated: finish %q, %q", r.Choices[0].FinishReason, got)
		}
	})
	t.Run("badfields typed", func(t *testing.T) {
		s := startServer(t, Config{Faults: []Fault{{Kind: FaultBadFields, Rate: 1}}})
		_, v := sections(complete(t, s, qaBody(nil)).Choices[0].Message.Content)
		if _, err := strconv.ParseFloat(v["confidence"], 64); err == nil {
			t.Errorf("confidence %q parses as a float", v["confidence"])
		}
		text := complete(t, s, chatBody(jsonSystem(qaInputs, qaOutputs), userMessage("q"), nil)).Choices[0].Message.Content
		var out struct {
			Confidence any `json:"confidence"`
		}
		if err := json.Unmarshal([]byte(text), &out); err != nil {
			t.Fatal(err)
		}
		if _, isNum := out.Confidence.(float64); isNum {
			t.Errorf("JSON confidence %v is a number", out.Confidence)
		}
	})
	t.Run("badfields untyped", func(t *testing.T) {
		s := startServer(t, Config{Faults: []Fault{{Kind: FaultBadFields, Rate: 1}}})
		outs := []tf{{name: "reasoning", typ: "str"}, {name: "answer", typ: "str"}}
		names, _ := sections(complete(t, s, chatBody(chatSystem(qaInputs, outs), userMessage("q"), nil)).Choices[0].Message.Content)
		if !slices.Equal(names, []string{"reasoning", "completed"}) {
			t.Errorf("markers = %v, want the last field missing", names)
		}
	})
	t.Run("reset", func(t *testing.T) {
		s := startServer(t, Config{Faults: []Fault{{Kind: FaultReset, Rate: 1}}})
		data, _ := json.Marshal(qaBody(nil))
		resp, err := testClient.Post(s.URL()+"/chat/completions", "application/json", bytes.NewReader(data))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("reset fault answered %d", resp.StatusCode)
		}
	})
}

func statuses(t *testing.T, cfg Config, n int) []int {
	t.Helper()
	s := startServer(t, cfg)
	out := make([]int, n)
	for i := range out {
		resp, _ := post(t, s.URL()+"/chat/completions", qaBody(nil))
		out[i] = resp.StatusCode
	}
	return out
}

func TestFaultSelection(t *testing.T) {
	first := statuses(t, Config{Faults: []Fault{{Kind: FaultServerError, FirstN: 2}}}, 4)
	if !slices.Equal(first, []int{500, 500, 200, 200}) {
		t.Errorf("first=2: %v", first)
	}
	cfg := Config{Seed: 11, Faults: []Fault{{Kind: FaultRateLimit, Rate: 0.5}, {Kind: FaultServerError, Rate: 0.5}}}
	a, b := statuses(t, cfg, 24), statuses(t, cfg, 24)
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different faults:\n%v\n%v", a, b)
	}
	count := map[int]int{}
	for _, st := range a {
		count[st]++
	}
	if count[429] == 0 || count[500] == 0 || count[200] == 0 {
		t.Errorf("rates 0.5/0.5 over 24 requests gave %v", count)
	}
	cfg.Seed = 12
	if c := statuses(t, cfg, 24); slices.Equal(a, c) {
		t.Errorf("different seeds gave the same faults: %v", c)
	}
}

func TestHang(t *testing.T) {
	t.Run("client gives up", func(t *testing.T) {
		s := startServer(t, Config{Faults: []Fault{{Kind: FaultHang, Rate: 1}}})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		data, _ := json.Marshal(qaBody(nil))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/chat/completions", bytes.NewReader(data))
		start := time.Now()
		_, err := testClient.Do(req)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want deadline exceeded", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("hang lasted %s after the client's deadline", d)
		}
		waitFor(t, func() bool { return len(s.Requests()) == 1 })
		if rec := s.Requests()[0]; rec.Fault != FaultHang || rec.Status != 0 {
			t.Errorf("recorded %+v", rec)
		}
	})
	t.Run("server closes", func(t *testing.T) {
		s, err := Start(t.Context(), Config{Faults: []Fault{{Kind: FaultHang, Rate: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(qaBody(nil))
		type result struct {
			status int
			err    error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := testClient.Post(s.URL()+"/chat/completions", "application/json", bytes.NewReader(data))
			if err != nil {
				done <- result{err: err}
				return
			}
			resp.Body.Close()
			done <- result{status: resp.StatusCode}
		}()
		waitFor(t, func() bool { return s.inFlight.Load() == 1 })
		start := time.Now()
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("close took %s with a hang in flight", d)
		}
		select {
		case r := <-done:
			if r.err == nil && r.status != http.StatusServiceUnavailable {
				t.Errorf("hanging client got %d", r.status)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("hanging request did not end after close")
		}
	})
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 5s")
}

func TestLatency(t *testing.T) {
	tests := []struct {
		spec string
		min  time.Duration
	}{
		{"30ms", 30 * time.Millisecond},
		{"uniform:20ms,40ms", 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			l, err := ParseLatency(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			s := startServer(t, Config{Latency: l})
			start := time.Now()
			complete(t, s, qaBody(nil))
			if d := time.Since(start); d < tt.min {
				t.Errorf("answered after %s, want at least %s", d, tt.min)
			}
		})
	}
	t.Run("samples are seeded", func(t *testing.T) {
		l := Latency{Dist: LatencyNormal, Value: 100 * time.Millisecond, Stddev: 50 * time.Millisecond}
		a, _ := New(Config{Seed: 3, Latency: l})
		b, _ := New(Config{Seed: 3, Latency: l})
		for seq := range uint64(20) {
			x, y := l.sample(a.rng(seq, streamLatency)), l.sample(b.rng(seq, streamLatency))
			if x != y || x < 0 {
				t.Fatalf("seq %d: %s vs %s", seq, x, y)
			}
		}
	})
	t.Run("latency honours client cancel", func(t *testing.T) {
		s := startServer(t, Config{Latency: Latency{Dist: LatencyFixed, Value: time.Minute}})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		data, _ := json.Marshal(qaBody(nil))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/chat/completions", bytes.NewReader(data))
		if _, err := testClient.Do(req); err == nil {
			t.Fatal("request with a minute of latency answered within 50ms")
		}
		waitFor(t, func() bool { return s.inFlight.Load() == 0 })
	})
}

func TestRequestErrors(t *testing.T) {
	s := startServer(t, Config{APIKey: "sk-test", MaxBodyBytes: 64 << 10})
	auth := http.Header{"Authorization": {"Bearer sk-test"}}
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		header http.Header
		status int
	}{
		{"bad JSON", "POST", "/chat/completions", `{"model": `, auth, 400},
		{"trailing data", "POST", "/chat/completions", `{"model": "m", "messages": [{"role": "user", "content": "x"}]} {}`, auth, 400},
		{"no messages", "POST", "/chat/completions", `{"model": "m", "messages": []}`, auth, 400},
		{"no model", "POST", "/chat/completions", `{"messages": [{"role": "user", "content": "x"}]}`, auth, 400},
		{"bad role", "POST", "/chat/completions", `{"model": "m", "messages": [{"role": "robot", "content": "x"}]}`, auth, 400},
		{"bad n", "POST", "/chat/completions", `{"model": "m", "n": 0, "messages": [{"role": "user", "content": "x"}]}`, auth, 400},
		{"bad content", "POST", "/chat/completions", `{"model": "m", "messages": [{"role": "user", "content": 5}]}`, auth, 400},
		{"too large", "POST", "/chat/completions", `{"model": "` + strings.Repeat("x", 70<<10) + `"}`, auth, 413},
		{"no key", "POST", "/chat/completions", `{}`, nil, 401},
		{"wrong key", "GET", "/models", ``, http.Header{"Authorization": {"Bearer nope"}}, 401},
		{"unknown path", "GET", "/nope", ``, auth, 404},
		{"outside v1", "GET", "!/x", ``, nil, 404},
		{"wrong method", "GET", "/chat/completions", ``, auth, 405},
		{"ok", "POST", "/chat/completions", `{"model": "m", "messages": [{"role": "user", "content": "x"}]}`, auth, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := s.URL() + tt.path
			if rest, ok := strings.CutPrefix(tt.path, "!"); ok { // outside /v1
				url = strings.TrimSuffix(s.URL(), "/v1") + rest
			}
			req, err := http.NewRequestWithContext(t.Context(), tt.method, url, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if resp.Header.Get(SimulatorHeader) != "true" {
				t.Error("missing simulator header")
			}
			if tt.status >= 400 {
				var e apiError
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
					t.Errorf("error body: %+v (%v)", e, err)
				}
			}
		})
	}
}

func TestModelsAndHealth(t *testing.T) {
	s := startServer(t, Config{Models: []string{"gpt-4o-mini", "dspex-sim", "gpt-4o-mini"}})
	resp, err := testClient.Get(s.URL() + "/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID      string `json:"id"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if len(list.Data) != 2 || list.Data[0].ID != DefaultModel || list.Data[1].ID != "gpt-4o-mini" || list.Data[1].OwnedBy != Owner {
		t.Errorf("models = %+v", list.Data)
	}
	health, err := testClient.Get(strings.TrimSuffix(s.URL(), "/v1") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	health.Body.Close()
	if health.StatusCode != 200 {
		t.Errorf("healthz = %d", health.StatusCode)
	}
}

func TestEmbeddings(t *testing.T) {
	s := startServer(t, Config{})
	resp, data := post(t, s.URL()+"/embeddings", map[string]any{
		"model": "emb", "input": []string{"the cat sat", "the cat sat down", "quantum chromodynamics"}, "dimensions": 32,
	})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	var out struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(data, &out); err != nil || len(out.Data) != 3 || len(out.Data[0].Embedding) != 32 {
		t.Fatalf("embeddings: %s (%v)", data, err)
	}
	dot := func(a, b []float64) float64 {
		var s float64
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	e := out.Data
	if near, far := dot(e[0].Embedding, e[1].Embedding), dot(e[0].Embedding, e[2].Embedding); near <= far {
		t.Errorf("similar texts %.2f not closer than unrelated %.2f", near, far)
	}
	if n := dot(e[0].Embedding, e[0].Embedding); n < 0.999 || n > 1.001 {
		t.Errorf("norm² = %f", n)
	}
	if resp, _ := post(t, s.URL()+"/embeddings", map[string]any{"model": "emb", "input": 5}); resp.StatusCode != 400 {
		t.Errorf("bad input: status %d", resp.StatusCode)
	}
}

func TestRequestsRing(t *testing.T) {
	s := startServer(t, Config{RecordLimit: 2})
	for _, q := range []string{"one", "two", "three"} {
		complete(t, s, chatBody("sys", q, nil))
	}
	reqs := s.Requests()
	if len(reqs) != 2 || reqs[0].Seq != 2 || reqs[1].Seq != 3 || reqs[1].Messages[1].Content != "three" || reqs[1].Status != 200 {
		t.Errorf("requests = %+v", reqs)
	}
	if len(reqs[1].Completions) != 1 || reqs[1].N != 1 {
		t.Errorf("completions = %v", reqs[1].Completions)
	}
}

func TestStartStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	s, err := Start(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	complete(t, s, qaBody(nil))
	cancel()
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := testClient.Get(s.URL() + "/models"); err == nil {
		t.Error("server still answers after its context was cancelled")
	}
	if err := s.ListenAndServe(t.Context(), "127.0.0.1:0", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("listen after close: %v", err)
	}
}

func TestConcurrentRequests(t *testing.T) {
	s := startServer(t, Config{Script: &Script{Rules: []Rule{{Match: "capital", Fields: map[string]any{"answer": "Paris"}, Times: 5}}}})
	var wg sync.WaitGroup
	answers := make([]string, 20)
	for i := range answers {
		wg.Go(func() {
			data, _ := json.Marshal(qaBody(nil))
			resp, err := testClient.Post(s.URL()+"/chat/completions", "application/json", bytes.NewReader(data))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var r testResponse
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
				t.Error(err)
				return
			}
			_, v := sections(r.Choices[0].Message.Content)
			answers[i] = v["answer"]
		})
	}
	wg.Wait()
	paris := 0
	for _, a := range answers {
		if a == "Paris" {
			paris++
		}
	}
	if paris != 5 {
		t.Errorf("rule with times 5 used %d times", paris)
	}
	if st := s.Stats(); st.Requests != 20 || st.ScriptHits != 5 {
		t.Errorf("stats = %+v", st)
	}
}

func TestMaxInFlight(t *testing.T) {
	s := startServer(t, Config{MaxInFlight: 1, Faults: []Fault{{Kind: FaultHang, FirstN: 1}}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		data, _ := json.Marshal(qaBody(nil))
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL()+"/chat/completions", bytes.NewReader(data))
		if resp, err := testClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, func() bool { return s.inFlight.Load() == 1 })
	resp, _ := post(t, s.URL()+"/chat/completions", qaBody(nil))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("second request: status %d, want 503", resp.StatusCode)
	}
	cancel()
	<-done
}
