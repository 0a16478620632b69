package lm_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
)

// TestDefaultStackPassesConcurrencyThrough checks that the default stack is
// not a bottleneck: 256 concurrent callers are all in flight at the
// simulator at once. (With the old default pool of 16 slots, 16 were and
// 240 waited in the pool's queue.)
func TestDefaultStackPassesConcurrencyThrough(t *testing.T) {
	const callers = 256
	f, _ := lmtest.ParseFault("hang")
	srv, err := lmtest.Start(context.Background(), lmtest.Config{Faults: []lmtest.Fault{f}, MaxInFlight: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client, err := openai.New(openai.Config{Model: "dspex-sim", BaseURL: srv.URL(), APIKeyEnv: "DSPEX_TEST_UNSET"})
	if err != nil {
		t.Fatal(err)
	}
	m := lm.NewStack(client, lm.ExecConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = m.Complete(ctx, ask(fmt.Sprint("question ", i)))
		}()
	}
	// Wait until every caller is either at the simulator or waiting for a
	// pool slot; the hanging simulator answers none of them.
	deadline := time.Now().Add(time.Minute)
	for srv.Stats().InFlight+int64(m.PoolStats().Waiting) < callers && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	st, ps := srv.Stats(), m.PoolStats()
	cancel()
	wg.Wait()
	if st.InFlight != callers || st.PeakInFlight != callers {
		t.Errorf("%d callers: %d in flight at the simulator (peak %d), %d waiting in the pool of %d slots; want all %d in flight",
			callers, st.InFlight, st.PeakInFlight, ps.Waiting, ps.Size, callers)
	}
}

// TestDefaultPoolKeepsQueueBound checks that the default pool still refuses
// callers beyond its slots and queue at once.
func TestDefaultPoolKeepsQueueBound(t *testing.T) {
	prov := blockingLM{entered: make(chan struct{}, lm.DefaultPoolSize)}
	p := lm.NewPool(prov, lm.PoolConfig{Queue: -1}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range lm.DefaultPoolSize {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = p.Complete(ctx, ask("x"))
		}()
	}
	for range lm.DefaultPoolSize {
		<-prov.entered
	}
	_, err := p.Complete(ctx, ask("one too many"))
	cancel()
	wg.Wait()
	if !errors.Is(err, lm.ErrQueueFull) {
		t.Errorf("caller beyond %d default slots and no queue: err = %v, want ErrQueueFull", lm.DefaultPoolSize, err)
	}
	if st := p.Stats(); st.Size != lm.DefaultPoolSize {
		t.Errorf("default size %d, want %d", st.Size, lm.DefaultPoolSize)
	}
}

// Taking and returning a free slot allocates nothing.
func TestSlotsAcquireAllocatesNothing(t *testing.T) {
	s := lm.NewSlots(lm.PoolConfig{})
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		release, _, err := s.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		release()
	})
	if allocs != 0 {
		t.Errorf("%.0f allocations per slot", allocs)
	}
}
