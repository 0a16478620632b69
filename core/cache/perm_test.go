//go:build unix

package cache

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

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

// The cache file holds prompts and answers: it, its -wal and -shm files and
// the directory created for it are the owner's alone, under the usual
// umask, and a file an older dspex left readable by everyone is made
// private when opened.
func TestCacheFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := filepath.Join(t.TempDir(), "cache", "dspex")
	path := filepath.Join(dir, "cache.db")
	c := open(t, Options{Path: path})
	mustSet(t, c, "k", []byte("value"))
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		wantMode(t, p, 0o600)
	}
	wantMode(t, dir, 0o700)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	c = open(t, Options{Path: path})
	wantGet(t, c, "k", []byte("value"), Disk)
	wantMode(t, path, 0o600)
}
