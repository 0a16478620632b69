// Package cache is a two-tier byte cache: an in-memory LRU in front of an
// SQLite file on disk that several processes may share.
//
// The cache stores opaque values under string keys and knows nothing of what
// they mean. The LM layer (package lm) is its main user: it keys responses by
// the hex SHA-256 digest of the canonical request and stores them JSON
// encoded. Deciding what goes into a key — and keeping secrets such as API
// keys and base URLs out of it — is the caller's job.
//
// # Tiers
//
// Get looks in memory first, then on disk; a disk hit is copied into memory
// so the next Get of the same key is a memory hit. Set writes both tiers.
// Values are always copied in and out, so callers never share a mutable slice
// with the cache or with each other.
//
// The memory tier is bounded by entries and by bytes and evicts the least
// recently used entry. The disk tier is one SQLite database in WAL mode with
// a busy timeout, so processes can read and write the same file at once; when
// its payload exceeds Options.MaxDiskBytes, a background goroutine deletes the
// least recently accessed rows until it is back under 90% of the limit.
// Access times are recorded in batches by that goroutine (and at most once a
// minute per key), never by a blocking write on the Get path.
//
// # Faults
//
// The disk tier is an optimisation, never a reason to fail. If the file
// cannot be opened or used (not a database, corrupt, unreadable, a directory,
// written by a newer version), Open returns a working memory-only *Cache
// together with an error wrapping ErrDiskUnavailable. If the disk fails later,
// the cache switches to memory only, records why in Stats.DiskError, and goes
// on: Get reports a miss rather than an error and Set still succeeds.
//
// A *Cache is safe for concurrent use. It owns one goroutine when it has a
// disk tier; Close stops it and waits for it.
package cache
