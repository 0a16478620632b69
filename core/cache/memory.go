package cache

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// memEntry is one value held in memory. value is never modified after the
// entry is created, so it may be copied outside the lock.
type memEntry struct {
	value []byte
	// touched is when the disk copy's access time was last brought up to
	// date (Unix milliseconds); guarded by memTier.mu.
	touched int64
}

// memTier is an LRU bounded by entries and by bytes (key plus value
// lengths). It is safe for concurrent use.
type memTier struct {
	mu        sync.Mutex
	lru       *simplelru.LRU[string, *memEntry]
	bytes     int64
	maxBytes  int64 // 0: no byte bound
	evictions int64
}

func newMemTier(entries int, maxBytes int64) (*memTier, error) {
	m := &memTier{maxBytes: maxBytes}
	lru, err := simplelru.NewLRU(entries, func(key string, e *memEntry) {
		m.bytes -= entrySize(key, e.value)
	})
	if err != nil {
		return nil, err
	}
	m.lru = lru
	return m, nil
}

func entrySize(key string, value []byte) int64 { return int64(len(key) + len(value)) }

// get returns the stored slice (which the caller must copy before handing
// out) and whether the disk access time is due for an update, in which case
// the entry is marked as touched at now.
func (m *memTier) get(key string, now int64) (value []byte, touch, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.lru.Get(key)
	if !ok {
		return nil, false, false
	}
	if now-e.touched >= touchInterval.Milliseconds() {
		e.touched = now
		touch = true
	}
	return e.value, touch, true
}

// set stores value, which the memory tier then owns. A value larger than
// the byte bound is not kept (and replaces nothing).
func (m *memTier) set(key string, value []byte, touched int64) {
	size := entrySize(key, value)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.maxBytes > 0 && size > m.maxBytes {
		m.lru.Remove(key)
		return
	}
	if old, ok := m.lru.Peek(key); ok {
		// Add replaces in place without calling the eviction callback.
		m.bytes -= entrySize(key, old.value)
	}
	if m.lru.Add(key, &memEntry{value: value, touched: touched}) {
		m.evictions++
	}
	m.bytes += size
	for m.maxBytes > 0 && m.bytes > m.maxBytes {
		if _, _, ok := m.lru.RemoveOldest(); !ok {
			break
		}
		m.evictions++
	}
}

func (m *memTier) remove(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Remove(key)
}

func (m *memTier) purge() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lru.Purge()
	m.bytes = 0
}

func (m *memTier) stats() (entries int, bytes, evictions int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len(), m.bytes, m.evictions
}
