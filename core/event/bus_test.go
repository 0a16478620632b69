package event

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestBlockSubscriberReceivesEverything(t *testing.T) {
	b := NewBus()
	var got atomic.Int64
	seen := make(map[int]bool)
	var mu sync.Mutex
	_, err := b.Subscribe(SubscribeOptions{Name: "all", Buffer: 256}, func(ev Event) {
		got.Add(1)
		mu.Lock()
		seen[ev.Data.(int)] = true
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	const publishers, each = 50, 2000
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				b.Publish(Event{Kind: LMEnd, Data: p*each + i})
			}
		}()
	}
	wg.Wait()
	b.Close()
	if got.Load() != publishers*each || len(seen) != publishers*each {
		t.Fatalf("received %d events (%d distinct), want %d", got.Load(), len(seen), publishers*each)
	}
}

func TestDropOldestNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBus()
		release := make(chan struct{})
		var got []int
		sub, _ := b.Subscribe(SubscribeOptions{Name: "live", Buffer: 16, Policy: DropOldest}, func(ev Event) {
			<-release // a handler that is stuck
			got = append(got, ev.Data.(int))
		})
		start := time.Now()
		for i := range 10000 {
			b.Publish(Event{Kind: Progress, Data: i})
		}
		// In the bubble time passes only while every goroutine is blocked,
		// so a publisher that waited on the stuck handler would show here.
		if d := time.Since(start); d != 0 {
			t.Fatalf("publishing to a stuck drop-oldest subscriber waited %v", d)
		}
		close(release)
		b.Close()
		st := sub.Stats()
		// At most one buffer in the handler's batch and one in the ring survive.
		if st.Dropped < 10000-2*16-1 || st.Delivered+st.Dropped != 10000 {
			t.Errorf("stats %+v", st)
		}
		if got[len(got)-1] != 9999 {
			t.Errorf("the newest event was dropped; last = %d", got[len(got)-1])
		}
	})
}

func TestStalledBlockSubscriberIsBoundedAndReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBus()
		defer b.Close()
		stuck := make(chan struct{})
		defer close(stuck)
		stalled, _ := b.Subscribe(SubscribeOptions{Name: "stuck-store", Buffer: 4, BlockTimeout: 50 * time.Millisecond}, func(Event) { <-stuck })
		problems := make(chan *SubscriberProblem, 8)
		b.Subscribe(SubscribeOptions{Name: "watcher", Kinds: []Kind{SubscriberError}}, func(ev Event) {
			problems <- ev.Data.(*SubscriberProblem)
		})
		start := time.Now()
		for i := range 100 {
			b.Publish(Event{Kind: LMEnd, Data: i})
		}
		// One wait of BlockTimeout, then the stalled subscriber loses events
		// without holding publishers up again.
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Fatalf("100 publishes to a stalled subscriber took %v, want one BlockTimeout (50ms)", d)
		}
		synctest.Wait()
		select {
		case p := <-problems:
			if p.Subscriber != "stuck-store" {
				t.Errorf("problem = %+v", p)
			}
		default:
			t.Fatal("stall not reported")
		}
		if st := stalled.Stats(); st.Stalls != 1 || st.Dropped < 90 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestPanickingSubscriberIsContained(t *testing.T) {
	b := NewBus()
	var after atomic.Int64
	sub, _ := b.Subscribe(SubscribeOptions{Name: "buggy"}, func(ev Event) {
		if ev.Data.(int) == 3 {
			panic("boom")
		}
		after.Add(1)
	})
	var reports atomic.Int64
	b.Subscribe(SubscribeOptions{Kinds: []Kind{SubscriberError}}, func(Event) { reports.Add(1) })
	for i := range 10 {
		b.Publish(Event{Kind: ModuleEnd, Data: i})
	}
	b.Close()
	if after.Load() != 9 || sub.Stats().Panics != 1 || reports.Load() != 1 {
		t.Errorf("after=%d stats=%+v reports=%d", after.Load(), sub.Stats(), reports.Load())
	}
}

func TestKindsAndWants(t *testing.T) {
	b := NewBus()
	if b.Wants(LMEnd) {
		t.Fatal("empty bus wants events")
	}
	var n atomic.Int64
	sub, _ := b.Subscribe(SubscribeOptions{Kinds: []Kind{LMEnd}}, func(Event) { n.Add(1) })
	ctx := WithBus(context.Background(), b)
	if !Enabled(ctx, LMEnd) || Enabled(ctx, ModuleStart) || Enabled(context.Background(), LMEnd) {
		t.Error("Enabled wrong")
	}
	Publish(ctx, ModuleStart, Span{}, nil)
	Publish(ctx, LMEnd, Span{}, nil)
	sub.Close()
	Publish(ctx, LMEnd, Span{}, nil)
	if n.Load() != 1 {
		t.Errorf("delivered %d", n.Load())
	}
	b.Close()
	if _, err := b.Subscribe(SubscribeOptions{}, func(Event) {}); err != ErrClosed {
		t.Errorf("subscribe after close: %v", err)
	}
}

func TestSpans(t *testing.T) {
	ctx, root := StartRun(context.Background())
	c1, child := StartSpan(ctx)
	_, grandchild := StartSpan(c1)
	if root.ParentID != "" || child.ParentID != root.SpanID || grandchild.ParentID != child.SpanID {
		t.Errorf("tree: %+v %+v %+v", root, child, grandchild)
	}
	if child.RunID != root.RunID || grandchild.RunID != root.RunID {
		t.Error("run id not inherited")
	}
	_, orphan := StartSpan(context.Background())
	if orphan.RunID == "" || orphan.ParentID != "" {
		t.Errorf("span without a run: %+v", orphan)
	}
}
