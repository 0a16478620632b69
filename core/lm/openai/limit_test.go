package openai

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/lm"
)

// bigCompletion is a completion whose answer is n bytes of text.
func bigCompletion(n int) string {
	return `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,` +
		`"message":{"role":"assistant","content":"` + strings.Repeat("a", n) + `"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`
}

// bigServer answers every request with body, with a Content-Length or
// (chunked) without one.
func bigServer(t testing.TB, body string, length bool) string {
	return fakeServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if length {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		} else if f, ok := w.(http.Flusher); ok {
			f.Flush() // no Content-Length: chunked
		}
		_, _ = w.Write([]byte(body))
	})
}

// A completion over MaxResponseBytes is refused with an error naming the
// limit, whether or not the server says its length; one at the limit is
// read.
func TestMaxResponseBytes(t *testing.T) {
	const limit = 256 << 10
	over := bigCompletion(limit)
	under := bigCompletion(limit - 200)
	for _, length := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-length=%v", length), func(t *testing.T) {
			o, err := New(Config{Model: "m", BaseURL: bigServer(t, over, length), APIKeyEnv: "DSPEX_TEST_NO_KEY", MaxResponseBytes: limit})
			if err != nil {
				t.Fatal(err)
			}
			_, err = o.Complete(context.Background(), userRequest("q"))
			if !errors.Is(err, lm.ErrBadResponse) || !strings.Contains(err.Error(), "262144-byte limit (lm.max_response_bytes)") {
				t.Fatalf("Complete of a %d-byte body = %v, want ErrBadResponse naming the %d-byte limit", len(over), err, limit)
			}
			if lm.Retryable(err) {
				t.Error("an over-limit response is retryable")
			}
			o, err = New(Config{Model: "m", BaseURL: bigServer(t, under, length), APIKeyEnv: "DSPEX_TEST_NO_KEY", MaxResponseBytes: int64(len(under))})
			if err != nil {
				t.Fatal(err)
			}
			res, err := o.Complete(context.Background(), userRequest("q"))
			if err != nil || len(res.Choices[0].Text) != limit-200 {
				t.Fatalf("Complete of a body at the limit: %v", err)
			}
		})
	}
	if _, err := New(Config{Model: "m", MaxResponseBytes: -1}); err == nil || !strings.Contains(err.Error(), "max response bytes") {
		t.Errorf("New with a negative limit: %v", err)
	}
}

// allocPerCall measures the bytes allocated by one Complete of a body of
// about size bytes.
func allocPerCall(t testing.TB, size int, length bool) (body int, alloc uint64) {
	completion := bigCompletion(size)
	o, err := New(Config{Model: "m", BaseURL: bigServer(t, completion, length), APIKeyEnv: "DSPEX_TEST_NO_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Complete(context.Background(), userRequest("q")); err != nil { // warm the connection
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := o.Complete(context.Background(), userRequest("q")); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	return len(completion), after.TotalAlloc - before.TotalAlloc
}

// The memory one large completion takes is bounded by a small multiple of
// its size: the body is read into a slice of exactly its Content-Length
// (not a buffer doubling past it), and decoded once. The test server's own
// allocations are counted too.
func TestLargeResponseHeap(t *testing.T) {
	body, alloc := allocPerCall(t, 8<<20, true)
	if ratio := float64(alloc) / float64(body); ratio > 3.5 {
		t.Errorf("one %d-byte completion allocated %d bytes, %.1f times its size; want at most 3.5", body, alloc, ratio)
	}
}

// BenchmarkLargeResponse reports the bytes allocated per byte of an 8 MiB
// completion body, with and without a Content-Length.
func BenchmarkLargeResponse(b *testing.B) {
	for _, length := range []bool{true, false} {
		b.Run(fmt.Sprintf("content-length=%v", length), func(b *testing.B) {
			var total float64
			for range b.N {
				body, alloc := allocPerCall(b, 8<<20, length)
				total += float64(alloc) / float64(body)
			}
			b.ReportMetric(total/float64(b.N), "alloc-bytes/body-byte")
		})
	}
}
