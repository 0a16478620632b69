package openai_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/openai"
)

const cannedCompletion = `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`

// cannedTransport answers every request with cannedCompletion, without a
// network, and keeps the last request's headers.
type cannedTransport struct{ last http.Header }

func (c *cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	c.last = r.Header
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(cannedCompletion)), ContentLength: int64(len(cannedCompletion)), Request: r}, nil
}

// The client's own work per call stays within an allocation budget (the
// transport here allocates next to nothing). It was 43 on Go 1.26 before
// the headers stopped being copied per request and the context of a
// request without a timeout was dropped; 38 then, 29 since the completion
// is read by a hand-written decoder, and 28 since the request body is
// written into one buffer.
func TestOpenAICompleteAllocations(t *testing.T) {
	client, err := openai.New(openai.Config{Model: "m", BaseURL: "http://127.0.0.1:1/v1", APIKeyEnv: "DSPEX_TEST_UNSET",
		Timeout: -1, HTTPClient: &http.Client{Transport: &cannedTransport{}}})
	if err != nil {
		t.Fatal(err)
	}
	req := ask("What is two plus two?")
	ctx := context.Background()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := client.Complete(ctx, req); err != nil {
			t.Fatal(err)
		}
	})
	const budget = 29
	t.Logf("%.0f allocations per call", allocs)
	if allocs > budget {
		t.Errorf("%.0f allocations per call, budget %d", allocs, budget)
	}
}

// With a cookie jar, the client's cookies go on a copy of the request's
// headers, never into the headers every request shares.
func TestOpenAICookieJarKeepsSharedHeaders(t *testing.T) {
	jar, _ := cookiejar.New(nil)
	tr := &cannedTransport{}
	hc := &http.Client{Transport: tr, Jar: jar}
	u, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/v1/", nil)
	jar.SetCookies(u.URL, []*http.Cookie{{Name: "session", Value: "s1"}})
	client, err := openai.New(openai.Config{Model: "m", BaseURL: "http://127.0.0.1:1/v1", APIKeyEnv: "DSPEX_TEST_UNSET", HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := client.Complete(context.Background(), ask("q")); err != nil {
			t.Fatal(err)
		}
		if got := tr.last.Values("Cookie"); len(got) != 1 || got[0] != "session=s1" {
			t.Errorf("Cookie headers %q, want one session=s1", got)
		}
	}
}

// ask is a request of one user message.
func ask(q string) *lm.Request {
	return &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: q}}}
}
