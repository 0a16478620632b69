package openai

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// openAICompletion is a completion as OpenAI sends it today, with the
// members DSPEx does not read.
const openAICompletion = `{
  "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
  "object": "chat.completion",
  "created": 1741570283,
  "model": "gpt-4o-2024-08-06",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 1117,
    "completion_tokens": 46,
    "total_tokens": 1163,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "accepted_prediction_tokens": 0}
  },
  "service_tier": "default",
  "system_fingerprint": "fp_fc9f1d7035"
}`

// decodeCases are bodies for the equivalence test and the fuzz seeds:
// the common shapes (which decodeChat reads itself) and the unusual ones
// (which it leaves to encoding/json).
var decodeCases = []struct {
	body string
	fast bool // decodeChat's own reader takes it
}{
	{completionJSON, true},
	{openAICompletion, true},
	{`{"id":"x","object":"chat.completion","created":1,"model":"bench","choices":[{"index":0,"message":{"role":"assistant","content":"[[ ## reasoning ## ]]\nTwo plus two is four.\n\n[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]"},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":20,"total_tokens":140}}`, true},
	{`{"choices":[{"index":2,"message":{"content":"two"},"finish_reason":"length"},{"index":0,"message":{"content":null,"refusal":"no"},"finish_reason":"content_filter"}]}`, true},
	{`{"choices":[]}`, true},
	{`{"choices":null,"id":null,"model":null,"usage":null}`, true},
	{`{"choices":[null,{"message":null,"index":null,"finish_reason":null}]}`, true},
	{`{"choices":[{"message":{"content":"tab\there \"quoted\" back\\slash \/ \b\f\r"}}]}`, true},
	{` {"choices":[{"index":-0}]} `, true},
	{`{"x":{"a":[1,{"b":"}"}],"c":"\"]"},"choices":[{"index":1,"tool_calls":[{"id":"c","function":{"name":"f","arguments":"{}"}}]}]}`, true},
	{`{"choices":[{"message":{"content":"caf\u00e9"}}]}`, false},
	{`{"choices":[{"message":{"content":"\ud83d\ude00 and \ud800 alone"}}]}`, false},
	{"{\"choices\":[{\"message\":{\"content\":\"bad \xff utf-8\"}}]}", false},
	{`{"ID":"upper","choices":[{"Index":1}]}`, false},
	{`{"id":"a","id":"b","choices":[{}]}`, false},
	{`{"choices":[{"index":0}],"choices":[{"index":1},{"index":2}]}`, false},
	{`{"choices":[{"index":1.0}]}`, false},
	{`{"choices":[{"index":1e2}]}`, false},
	{`{"choices":[{"index":99999999999999999999}]}`, false},
	{`{"choices":[{"index":"0"}]}`, false},
	{`{"choices":{"index":0}}`, false},
	{`{"choices":[{"message":"hi"}]}`, false},
	{`{"choices":[],"error":{"message":"overloaded","code":502}}`, false},
	{`{"choices":[],"error":null}`, false},
	{`{"ch\u006fices":[{"index":3}]}`, false},
	{"{\"\u017fervice\":1,\"choices\":[]}", false},
	{`null`, false},
	{`[1,2]`, false},
	{`"text"`, false},
	{`{"choices":[{"index":0}]`, false},
	{`{"choices":[{"index":0}]} {}`, false},
	{``, false},
	{`{"choices":[{"index":01}]}`, false},
	{`{"choices":[{"index":-}]}`, false},
	{`{"x":tru,"choices":[]}`, false},
	{`{"x":[1,],"choices":[]}`, false},
	{`{"x":{"a":1,},"choices":[]}`, false},
	{`{"x":"\x","choices":[]}`, false},
	{`{"x":"\u12G4","choices":[]}`, false},
	{"{\"x\":\"a\tb\",\"choices\":[]}", false},
	{`{"x":1.,"choices":[]}`, false},
	{`{"x":1e,"choices":[]}`, false},
	{`{"x":-1.5e+3,"y":[true,false,null,{}],"choices":[]}`, true},
	{`{"x":` + strings.Repeat("[", 150) + strings.Repeat("]", 150) + `,"choices":[]}`, false},
	{`{"choices":[{"index":0}]`, false},
	{`{"choices":[{"index":0}]}}`, false},
}

// TestDecodeChatMatchesEncodingJSON: decodeChat gives what json.Unmarshal
// gives, and its own reader takes the common shapes.
func TestDecodeChatMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, c := range decodeCases {
		checkDecodeChat(t, []byte(c.body))
		var cr chatResponse
		if got := fastDecodeChat([]byte(c.body), &cr); got != c.fast {
			t.Errorf("fastDecodeChat(%s) = %v, want %v", c.body, got, c.fast)
		}
	}
}

// checkDecodeChat fails t unless decodeChat and json.Unmarshal agree on
// raw: both fail, or both give the same chatResponse.
func checkDecodeChat(t *testing.T, raw []byte) {
	t.Helper()
	var want, got chatResponse
	wantErr := json.Unmarshal(raw, &want)
	gotErr := decodeChat(raw, &got)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("body %q: decodeChat error %v, json.Unmarshal error %v", raw, gotErr, wantErr)
	}
	if wantErr != nil {
		if gotErr.Error() != wantErr.Error() {
			t.Errorf("body %q: decodeChat error %q, json.Unmarshal error %q", raw, gotErr, wantErr)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body %q:\ndecodeChat   %+v\njson.Unmarshal %+v", raw, got, want)
	}
}

// FuzzDecodeChat: on any input, decodeChat agrees with json.Unmarshal, and
// whenever its own reader accepts a body, encoding/json reads the same.
func FuzzDecodeChat(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c.body))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkDecodeChat(t, raw)
		var fast, want chatResponse
		if fastDecodeChat(raw, &fast) {
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatalf("body %q: fast reader accepted what json.Unmarshal refuses: %v", raw, err)
			}
			if !reflect.DeepEqual(fast, want) {
				t.Fatalf("body %q:\nfast        %+v\njson.Unmarshal %+v", raw, fast, want)
			}
		}
	})
}

// TestDecodeChatAllocations bounds what reading a typical completion
// allocates: the choices, the strings kept, the content pointer.
func TestDecodeChatAllocations(t *testing.T) {
	raw := []byte(openAICompletion)
	allocs := testing.AllocsPerRun(200, func() {
		var cr chatResponse
		if err := decodeChat(raw, &cr); err != nil {
			t.Fatal(err)
		}
	})
	// The response (it escapes into encoding/json's fallback), id, model,
	// choices, content pointer, content, finish reason.
	if allocs > 7 {
		t.Errorf("decodeChat allocates %.0f times per completion, want at most 7", allocs)
	}
}

func BenchmarkDecodeChat(b *testing.B) {
	raw := []byte(openAICompletion)
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var cr chatResponse
			if err := decodeChat(raw, &cr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var cr chatResponse
			if err := json.Unmarshal(raw, &cr); err != nil {
				b.Fatal(err)
			}
		}
	})
}
