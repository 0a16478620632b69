package dashboard

import (
	"sync"

	"github.com/dspex/dspex/core/event"
)

// liveState is what the dashboard learns from the bus of its own process:
// each run's latest progress (the trace store does not keep progress) and
// a change counter per run, so that pages update as soon as something
// happens.
type liveState struct {
	mu       sync.Mutex
	progress map[string]event.ProgressInfo
	version  map[string]uint64
}

func newLiveState() *liveState {
	return &liveState{progress: map[string]event.ProgressInfo{}, version: map[string]uint64{}}
}

// handle is the bus subscriber.
func (l *liveState) handle(ev event.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := ev.Data.(*event.ProgressInfo); ok && ev.Kind == event.Progress && ev.RunID != "" {
		l.progress[ev.RunID] = *p
	}
	l.version[ev.RunID]++
}

// get returns a run's latest progress and its change counter.
func (l *liveState) get(runID string) (event.ProgressInfo, bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, ok := l.progress[runID]
	return p, ok, l.version[runID]
}
