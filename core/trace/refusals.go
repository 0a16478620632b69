package trace

import (
	"cmp"
	"slices"
	"time"

	"github.com/dspex/dspex/core/event"
)

// maxSamplePath bounds the example path kept with a refusal count.
const maxSamplePath = 256

// RefusalCount is the data of an EventHTTPRefused row: how many requests
// of one run were refused with one status and error type between First
// and Last, with the method and path of the first of them.
type RefusalCount struct {
	Status    int       `json:"status"`
	ErrorType string    `json:"error_type,omitempty"`
	Count     int64     `json:"count"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
	Method    string    `json:"sample_method,omitempty"`
	Path      string    `json:"sample_path,omitempty"`
	Error     string    `json:"sample_error,omitempty"`
}

type refusalKey struct {
	run, parent, errType string
	status               int
}

// refusals counts refused HTTP requests between two writes of their
// counts. It is used by the store's writer goroutine only.
type refusals struct {
	since  time.Time // when the oldest pending count began
	counts map[refusalKey]*RefusalCount
}

func newRefusals() *refusals {
	return &refusals{since: time.Now(), counts: map[refusalKey]*RefusalCount{}}
}

// refused reports whether ev is an HTTP request refused without running
// the program: a 4xx answer other than 499 (the client went away, which
// may happen while the program runs).
func refused(ev event.Event) (*event.HTTPRequestInfo, bool) {
	if ev.Kind != event.HTTPRequest {
		return nil, false
	}
	d, ok := payload[event.HTTPRequestInfo](ev.Data)
	if !ok || d.Status < 400 || d.Status >= 500 || d.Status == 499 {
		return nil, false
	}
	return d, true
}

// count counts ev when it is a refused request, and reports whether it
// did.
func (r *refusals) count(ev event.Event) bool {
	d, ok := refused(ev)
	if !ok {
		return false
	}
	at := ev.Time
	if at.IsZero() {
		at = time.Now()
	}
	if len(r.counts) == 0 {
		r.since = time.Now()
	}
	k := refusalKey{run: ev.RunID, parent: ev.ParentID, errType: d.ErrorType, status: d.Status}
	c, ok := r.counts[k]
	if !ok {
		c = &RefusalCount{Status: d.Status, ErrorType: d.ErrorType, First: at, Method: clipText(d.Method, maxSamplePath),
			Path: clipText(d.Path, maxSamplePath), Error: clipText(d.Error, maxSamplePath)}
		r.counts[k] = c
	}
	c.Count++
	c.First = minTime(c.First, at)
	c.Last = maxTime(c.Last, at)
	return true
}

func (r *refusals) pending() bool { return len(r.counts) > 0 }

// appendTo appends one EventHTTPRefused event per count to batch, in a
// stable order, and starts counting afresh.
func (r *refusals) appendTo(batch []event.Event) []event.Event {
	keys := make([]refusalKey, 0, len(r.counts))
	for k := range r.counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b refusalKey) int {
		if a.run != b.run {
			return cmp.Compare(a.run, b.run)
		}
		if a.status != b.status {
			return a.status - b.status
		}
		return cmp.Compare(a.errType, b.errType)
	})
	for _, k := range keys {
		c := r.counts[k]
		batch = append(batch, event.Event{Kind: event.Kind(EventHTTPRefused), Time: c.Last, RunID: k.run, ParentID: k.parent, Data: c})
	}
	clear(r.counts)
	r.since = time.Now()
	return batch
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
