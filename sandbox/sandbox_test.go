package sandbox

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	rep := Check(context.Background(), Config{Python: testPython(t)})
	b, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("%s", b)
	if !rep.Available {
		t.Fatalf("sandbox unavailable: %s", rep.Reason)
	}
	if rep.UID != UID || rep.Network {
		t.Fatalf("uid %d, network %v", rep.UID, rep.Network)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
