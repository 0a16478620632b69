package adapter

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/signature"
)

var streamSig = signature.MustParse("question -> reasoning, answer, score: float, tags: list[str]")

// feedInPieces feeds text to s cut at random points and joins the chunks
// per field, checking fields come in order.
func feedInPieces(t *testing.T, s splitter, text string, rng *rand.Rand) (map[string]string, []string) {
	t.Helper()
	got := map[string]string{}
	var order []string
	for len(text) > 0 {
		n := 1 + rng.IntN(min(len(text), 12))
		for n < len(text) && !utf8Boundary(text, n) {
			n++
		}
		for _, c := range s.feed(text[:n]) {
			if len(order) == 0 || order[len(order)-1] != c.Field {
				order = append(order, c.Field)
			}
			got[c.Field] += c.Text
		}
		text = text[n:]
	}
	return got, order
}

func utf8Boundary(s string, i int) bool { return i >= len(s) || s[i]&0xC0 != 0x80 }

func TestChatSplitter(t *testing.T) {
	completion := "preamble\n[[ ## reasoning ## ]]\n  Step one.\n\nStep [two] é.  \n\n[[ ## answer ## ]] Paris\n[[ ## score ## ]]\n0.5\n[[ ## tags ## ]]\n[\"a\", \"b\"]\n[[ ## answer ## ]]\nignored repeat\n\n[[ ## completed ## ]]\n"
	want, err := (&ChatAdapter{}).Parse(streamSig, completion)
	if err != nil {
		t.Fatal(err)
	}
	for seed := range 50 {
		got, order := feedInPieces(t, newChatSplitter(streamSig), completion, rand.New(rand.NewPCG(uint64(seed), 1)))
		if got["reasoning"] != want["reasoning"] || got["answer"] != want["answer"] {
			t.Fatalf("seed %d: chunks add up to %q / %q, parser says %q / %q", seed, got["reasoning"], got["answer"], want["reasoning"], want["answer"])
		}
		if got["score"] != "0.5" || got["tags"] != `["a", "b"]` {
			t.Fatalf("seed %d: typed fields %q %q", seed, got["score"], got["tags"])
		}
		if strings.Join(order, ",") != "reasoning,answer,score,tags" {
			t.Fatalf("seed %d: field order %v", seed, order)
		}
	}
}

func TestJSONSplitter(t *testing.T) {
	completion := "```json\n{\"reasoning\": \"Step \\\"one\\\".\\nStep two \\u00e9 \\ud83d\\ude00.\", \"answer\": \"Paris\", \"extra\": \"skip me\", \"score\": 0.5, \"tags\": [\"a\", \"b,c\"]}\n```"
	want, err := JSONAdapter{}.Parse(streamSig, completion)
	if err != nil {
		t.Fatal(err)
	}
	for seed := range 50 {
		got, order := feedInPieces(t, newJSONSplitter(streamSig), completion, rand.New(rand.NewPCG(uint64(seed), 2)))
		if got["reasoning"] != want["reasoning"] || got["answer"] != "Paris" {
			t.Fatalf("seed %d: %q / %q, want %q", seed, got["reasoning"], got["answer"], want["reasoning"])
		}
		if got["score"] != "0.5" || got["tags"] != `["a", "b,c"]` || got["extra"] != "" {
			t.Fatalf("seed %d: %v", seed, got)
		}
		if strings.Join(order, ",") != "reasoning,answer,score,tags" {
			t.Fatalf("seed %d: order %v", seed, order)
		}
	}
}

func FuzzSplitters(f *testing.F) {
	f.Add("[[ ## reasoning ## ]]\nr\n[[ ## answer ## ]]\na", 3)
	f.Add(`{"reasoning": "r\u00e9", "answer": "a", "score": [1, {"x": "]"}]}`, 5)
	f.Add("[[ ## answer", 1)
	f.Add(`{"answer": "\ud83d`, 2)
	f.Fuzz(func(t *testing.T, text string, seed int) {
		rng := rand.New(rand.NewPCG(uint64(seed), 3))
		for _, s := range []splitter{newChatSplitter(streamSig), newJSONSplitter(streamSig)} {
			got, _ := feedInPieces(t, s, text, rng)
			for field := range got {
				if !streamSig.IsOutput(field) {
					t.Fatalf("chunk for non-output field %q", field)
				}
			}
		}
	})
}

func TestUnescapeSurrogates(t *testing.T) {
	cases := []struct{ seq, want string }{
		{`\ud83d\ude00`, "😀"},
		{`\ud83d\u0041`, "\ufffdA"}, // the second escape is no low surrogate
		{`\ud83d\ud83d`, "\ufffd\ufffd"},
		{`\ud83dx`, "\ufffdx"},
		{`\u00e9`, "é"},
	}
	for _, c := range cases {
		if got, ok := unescape(c.seq); !ok || got != c.want {
			t.Errorf("unescape(%q) = %q, %v; want %q", c.seq, got, ok, c.want)
		}
	}
	// The splitter's text for a string value adds up to what the parser reads.
	completion := `{"reasoning": "r", "answer": "a\ud83d\u0041b", "score": 1, "tags": []}`
	want, err := JSONAdapter{}.Parse(streamSig, completion)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := feedInPieces(t, newJSONSplitter(streamSig), completion, rand.New(rand.NewPCG(1, 4)))
	if got["answer"] != want["answer"] {
		t.Errorf("chunks add up to %q, parser says %q", got["answer"], want["answer"])
	}
}
