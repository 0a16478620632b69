//go:build unix

package trace

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dspex/dspex/core/event"
)

// withUmask runs the test under umask 022, the usual one, under which files
// created without an explicit mode are readable by everyone.
func withUmask(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %#o, want %#o", filepath.Base(path), got, want)
	}
}

// The database holds prompts and answers: it, its -wal and -shm files and
// the directory created for it are the owner's alone.
func TestDatabaseFilesArePrivate(t *testing.T) {
	withUmask(t)
	dir := filepath.Join(t.TempDir(), "state", "dspex")
	path := filepath.Join(dir, "traces.db")
	s, bus := openStore(t, path, Options{FlushInterval: time.Millisecond})
	bus.Publish(event.Event{Kind: event.RunStart, RunID: "r1", Time: t0, Data: &event.RunInfo{Name: "run"}})
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Events == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// While the store is open, the log and shared-memory files exist.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		wantMode(t, p, 0o600)
	}
	wantMode(t, dir, 0o700)
	wantMode(t, filepath.Dir(dir), 0o700)
	closeStore(t, s)
}

// A database an older dspex created readable by everyone is made private
// when it is opened.
func TestExistingDatabaseIsMadePrivate(t *testing.T) {
	withUmask(t)
	path := tempDB(t)
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	closeStore(t, s)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ = openStore(t, path, Options{})
	wantMode(t, path, 0o600)
	closeStore(t, s)
}
