package serve_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dspex/dspex/cmd/dspex/internal/serve"
	"github.com/dspex/dspex/core/event"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/trace"
)

// A flood of requests refused with huge paths grows the trace database by
// a bounded amount: the recorded path is cut short and the store counts
// refusals instead of storing each.
func TestRefusedFloodGrowsTracesBoundedly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traces.db")
	store, err := trace.Open(context.Background(), path, trace.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bus := event.NewBus()
	t.Cleanup(bus.Close)
	if err := store.Attach(bus); err != nil {
		t.Fatal(err)
	}
	sig := signature.MustParse("question -> answer")
	rs := startServer(t, serve.Config{Program: funcProgram(nil), Signature: sig}, nil, bus)
	client := newClient(4)
	long := "/" + strings.Repeat("p", 60<<10)
	const flood = 400
	for i := range flood {
		res := do(client, http.MethodGet, rs.url+long, nil)
		if res.err != nil || res.status != http.StatusNotFound {
			t.Fatalf("request %d: status %d, %v", i, res.status, res.err)
		}
		if len(res.body) > 4<<10 {
			t.Fatalf("the 404 answer is %d bytes: it echoes the whole path", len(res.body))
		}
	}
	if err := rs.stop(); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			size += fi.Size()
		}
	}
	if size > 1<<20 {
		t.Errorf("%d refused requests with 60 KB paths left a %d-byte trace database", flood, size)
	}
	if st := store.Stats(); st.Refused != flood {
		t.Errorf("the store counted %d refusals, want %d", st.Refused, flood)
	}
}
