package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// SchemaVersion is the version of the disk file's schema that this package
// writes. Files with a newer version are not used.
const SchemaVersion = 1

var (
	// ErrDiskUnavailable is wrapped by errors saying the disk tier cannot be
	// used and the cache works from memory only.
	ErrDiskUnavailable = errors.New("cache: disk tier unavailable")
	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("cache: closed")
)

// Tier says where Get found a value.
type Tier uint8

const (
	// Miss means the key was in neither tier.
	Miss Tier = iota
	// Memory means the in-memory LRU.
	Memory
	// Disk means the SQLite file.
	Disk
)

func (t Tier) String() string {
	switch t {
	case Miss:
		return "miss"
	case Memory:
		return "memory"
	case Disk:
		return "disk"
	}
	return fmt.Sprintf("Tier(%d)", uint8(t))
}

// Options configure Open. The zero value is a memory-only cache with the
// defaults below.
type Options struct {
	// MemoryEntries bounds the memory tier's entries. Default 10,000;
	// negative disables the memory tier.
	MemoryEntries int
	// MemoryBytes bounds the memory tier's bytes (keys plus values). Default
	// 256 MiB; negative means no byte bound. A value larger than the bound is
	// kept on disk only.
	MemoryBytes int64
	// Path is the SQLite file of the disk tier, created (with its parent
	// directories) if missing. Default "": no disk tier. DefaultPath gives the
	// conventional location.
	Path string
	// MaxDiskBytes bounds the disk tier's payload (keys plus values; the file
	// is somewhat larger). When exceeded, the least recently accessed entries
	// are deleted until the payload is under 90% of it. The limit is checked
	// after every 1% of it written by this process, and when the cache opens.
	// Default 1 GiB; negative means no limit.
	MaxDiskBytes int64
	// BusyTimeout is how long an SQLite call waits for another connection
	// or process holding the file's lock. Default 5s.
	BusyTimeout time.Duration
	// MaxValueBytes is the largest value Set stores; larger ones are skipped
	// (and counted in Stats.Skipped). Default 32 MiB; negative means no limit.
	MaxValueBytes int64
	// Clock gives the time recorded as entries' creation and access times.
	// Default time.Now.
	Clock func() time.Time
	// OnDiskFailure, when set, is called once if the disk tier turns off
	// after Open (an I/O error, a file damaged or replaced, a full disk),
	// with the error recorded in Stats.DiskError; the cache goes on from
	// memory. It runs on the goroutine whose operation failed and must not
	// call the cache.
	OnDiskFailure func(error)
}

const (
	defaultMemoryEntries = 10_000
	defaultMemoryBytes   = 256 << 20
	defaultMaxDiskBytes  = 1 << 30
	defaultBusyTimeout   = 5 * time.Second
	defaultMaxValueBytes = 32 << 20
)

func (o Options) withDefaults() Options {
	if o.MemoryEntries == 0 {
		o.MemoryEntries = defaultMemoryEntries
	}
	if o.MemoryBytes == 0 {
		o.MemoryBytes = defaultMemoryBytes
	}
	if o.MaxDiskBytes == 0 {
		o.MaxDiskBytes = defaultMaxDiskBytes
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = defaultBusyTimeout
	}
	if o.MaxValueBytes == 0 {
		o.MaxValueBytes = defaultMaxValueBytes
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

// Stats describe a cache. Counters count this *Cache's calls since Open;
// the disk figures are read from the file and so include entries written by
// other processes.
type Stats struct {
	// Path is the disk tier's file (absolute), or "" for a memory-only cache.
	Path string `json:"path,omitempty"`
	// DiskError says why the disk tier is off, naming the path; "" while it
	// works or when none was asked for.
	DiskError string `json:"disk_error,omitempty"`
	// SchemaVersion is the file's schema version (0 without a disk tier).
	SchemaVersion int `json:"schema_version,omitempty"`

	MemoryEntries int   `json:"memory_entries"`
	MemoryBytes   int64 `json:"memory_bytes"`
	// DiskEntries and DiskBytes are the rows in the file and their payload
	// (keys plus values); FileBytes is the size of the file and its
	// write-ahead log.
	DiskEntries int64 `json:"disk_entries"`
	DiskBytes   int64 `json:"disk_bytes"`
	FileBytes   int64 `json:"file_bytes"`

	MemoryHits int64 `json:"memory_hits"`
	DiskHits   int64 `json:"disk_hits"`
	Misses     int64 `json:"misses"`
	Sets       int64 `json:"sets"`
	// Skipped counts Sets of values over Options.MaxValueBytes.
	Skipped int64 `json:"skipped"`
	// MemoryEvictions and DiskEvictions count entries evicted for space, the
	// latter only by this *Cache.
	MemoryEvictions int64 `json:"memory_evictions"`
	DiskEvictions   int64 `json:"disk_evictions"`
}

// Cache is a two-tier byte cache. Its methods are safe for concurrent use.
// It owns a goroutine while it has a disk tier; call Close to stop it.
type Cache struct {
	mem      *memTier  // nil: memory tier disabled
	disk     *diskTier // nil: memory only
	path     string
	openErr  string // why Open could not use path
	maxValue int64  // <0: no limit
	clock    func() time.Time
	closed   atomic.Bool

	memHits, diskHits, misses, sets, skipped atomic.Int64
}

// Open makes a cache with the given options. It fails only for the disk
// tier, and even then returns a usable memory-only *Cache along with an
// error wrapping ErrDiskUnavailable that names the path and the problem, for
// example
//
//	cache: disk tier unavailable: /x/lm-cache.db: file is not a database; using memory only
//
// Callers that can live without the disk tier may log the error and go on.
// ctx bounds opening the file only.
func Open(ctx context.Context, opts Options) (*Cache, error) {
	opts = opts.withDefaults()
	c := &Cache{maxValue: opts.MaxValueBytes, clock: opts.Clock}
	if opts.MemoryEntries > 0 {
		mem, err := newMemTier(opts.MemoryEntries, max(0, opts.MemoryBytes))
		if err != nil {
			return nil, fmt.Errorf("cache: memory tier: %w", err)
		}
		c.mem = mem
	}
	if opts.Path == "" {
		return c, nil
	}
	path, err := filepath.Abs(opts.Path)
	if err != nil {
		path = opts.Path
	}
	c.path = path
	if err == nil {
		c.disk, err = openDisk(ctx, path, opts)
	}
	if err != nil {
		c.openErr = fmt.Sprintf("%s: %v", path, err)
		return c, fmt.Errorf("%w: %s: %w; using memory only", ErrDiskUnavailable, path, err)
	}
	return c, nil
}

// DefaultPath is the conventional cache file: lm-cache.db in a dspex folder
// of the user's cache directory (os.UserCacheDir, e.g. ~/.cache/dspex on
// Linux).
func DefaultPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache: default path: %w", err)
	}
	return filepath.Join(dir, "dspex", "lm-cache.db"), nil
}

func (c *Cache) now() int64 { return c.clock().UnixMilli() }

// diskOn reports whether the disk tier is there and working.
func (c *Cache) diskOn() bool { return c.disk != nil && !c.disk.failed.Load() }

// Get returns a copy of the value stored under key and the tier it came
// from; ok is false on a miss. A disk hit is copied into the memory tier.
// Get never fails: a closed cache reads as a miss, and so do a done ctx and
// a disk fault (which turns the disk tier off) where the value would come
// from disk; ctx is not consulted for a memory hit.
func (c *Cache) Get(ctx context.Context, key string) (value []byte, tier Tier, ok bool) {
	if c.closed.Load() {
		return nil, Miss, false
	}
	now := c.now()
	if c.mem != nil {
		if v, touch, ok := c.mem.get(key, now); ok {
			if touch && c.diskOn() {
				c.disk.touch(key, now)
			}
			c.memHits.Add(1)
			return bytes.Clone(v), Memory, true
		}
	}
	if c.diskOn() {
		v, accessed, ok, err := c.disk.get(ctx, key)
		if ok && err == nil {
			touched := accessed
			if now-accessed >= touchInterval.Milliseconds() {
				c.disk.touch(key, now)
				touched = now
			}
			if c.mem != nil {
				c.mem.set(key, bytes.Clone(v), touched)
			}
			c.diskHits.Add(1)
			return v, Disk, true
		}
	}
	c.misses.Add(1)
	return nil, Miss, false
}

// Set stores a copy of value under key in both tiers, replacing any value
// there. A value over Options.MaxValueBytes is not stored, and Set returns
// nil. A disk fault turns the disk tier off and Set still returns nil: the
// value is in memory, and the fault shows in Stats.DiskError. Set returns an
// error after Close, when ctx is done, and when the disk is only busy
// (another process held its lock past Options.BusyTimeout); in the last case
// the value is in memory but not on disk.
func (c *Cache) Set(ctx context.Context, key string, value []byte) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.maxValue >= 0 && int64(len(value)) > c.maxValue {
		c.skipped.Add(1)
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.sets.Add(1)
	now := c.now()
	if c.mem != nil {
		c.mem.set(key, bytes.Clone(value), now)
	}
	if c.diskOn() {
		if err := c.disk.set(ctx, key, value, now); err != nil && c.diskOn() {
			return fmt.Errorf("cache: set %s: %w", key, err)
		}
	}
	return nil
}

// Delete removes key from both tiers. Like Set, it returns nil after a disk
// fault, and an error after Close and, with a disk tier, when ctx is done or
// the disk is busy (the key is then gone from memory only).
func (c *Cache) Delete(ctx context.Context, key string) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.mem != nil {
		c.mem.remove(key)
	}
	if c.diskOn() {
		if err := c.disk.delete(ctx, key); err != nil && c.diskOn() {
			return fmt.Errorf("cache: delete %s: %w", key, err)
		}
	}
	return nil
}

// Clear removes every entry from both tiers — on disk, for every process
// sharing the file. Errors are as for Delete.
func (c *Cache) Clear(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.mem != nil {
		c.mem.purge()
	}
	if c.diskOn() {
		if _, err := c.disk.clear(ctx); err != nil && c.diskOn() {
			return fmt.Errorf("cache: clear %s: %w", c.path, err)
		}
	}
	return nil
}

// Stats returns the cache's figures. A disk fault turns the disk tier off and
// shows in DiskError rather than as an error; Stats returns an error after
// Close and, with a disk tier, when ctx is done or the disk is busy.
func (c *Cache) Stats(ctx context.Context) (Stats, error) {
	if c.closed.Load() {
		return Stats{}, ErrClosed
	}
	s := Stats{
		Path:       c.path,
		MemoryHits: c.memHits.Load(),
		DiskHits:   c.diskHits.Load(),
		Misses:     c.misses.Load(),
		Sets:       c.sets.Load(),
		Skipped:    c.skipped.Load(),
	}
	if c.mem != nil {
		s.MemoryEntries, s.MemoryBytes, s.MemoryEvictions = c.mem.stats()
	}
	if c.disk != nil {
		s.SchemaVersion = c.disk.version
		s.DiskEvictions = c.disk.evictions.Load()
		if c.diskOn() {
			ds, err := c.disk.stats(ctx)
			if err != nil && c.diskOn() {
				return s, fmt.Errorf("cache: stats %s: %w", c.path, err)
			}
			s.DiskEntries, s.DiskBytes, s.FileBytes = ds.entries, ds.bytes, ds.fileBytes
		}
	}
	s.DiskError = c.diskError()
	return s, nil
}

func (c *Cache) diskError() string {
	if c.openErr != "" {
		return c.openErr
	}
	if c.disk != nil {
		return c.disk.problem()
	}
	return ""
}

// Check runs SQLite's integrity check over the disk file (it reads the whole
// file, so it is for tools such as `dspex cache stats`, not for every Open).
// It returns an error wrapping ErrDiskUnavailable when there is no working
// disk tier, and one listing the problems found when the file is damaged.
func (c *Cache) Check(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if !c.diskOn() {
		if why := c.diskError(); why != "" {
			return fmt.Errorf("%w: %s", ErrDiskUnavailable, why)
		}
		return fmt.Errorf("%w: memory-only cache", ErrDiskUnavailable)
	}
	problems, err := c.disk.verify(ctx)
	if err != nil {
		if !c.diskOn() {
			return fmt.Errorf("%w: %s", ErrDiskUnavailable, c.diskError())
		}
		return fmt.Errorf("cache: check %s: %w", c.path, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("cache: check %s: damaged: %s", c.path, strings.Join(problems, "; "))
	}
	return nil
}

// Close stops the cache's goroutine after it writes pending access times,
// waits for it, and closes the file. Later calls to Get miss and the other
// methods return ErrClosed. Close is idempotent.
func (c *Cache) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	var err error
	if c.disk != nil {
		if cerr := c.disk.close(); cerr != nil {
			err = fmt.Errorf("cache: close %s: %w", c.path, cerr)
		}
	}
	if c.mem != nil {
		c.mem.purge()
	}
	return err
}

// Store is the cache seen as a plain key → bytes store, without the tier
// of a hit: the shape the LM layer's response store (lm.ResponseStore) and
// similar consumers want. Safe for concurrent use.
type Store struct{ c *Cache }

// Store returns the cache as a Store.
func (c *Cache) Store() Store { return Store{c} }

// Get returns the value under key and whether it was found.
func (s Store) Get(ctx context.Context, key string) ([]byte, bool) {
	v, _, ok := s.c.Get(ctx, key)
	return v, ok
}

// Set stores value under key.
func (s Store) Set(ctx context.Context, key string, value []byte) error {
	return s.c.Set(ctx, key, value)
}
