package main

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzReadRaw(f *testing.F) {
	f.Add([]byte(`{"cpu":"x","cores":2,"steps":[{"id":"dups","pkg":"./core/lm","output":"BenchmarkCollapsedDuplicates-2 5 1 ns/op 1 lm-calls\n"}]}`))
	f.Add([]byte(`{"steps":[]}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "raw.txt")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		env, runs, err := readRaw(path)
		if err != nil {
			return
		}
		if len(runs) == 0 {
			t.Fatal("readRaw accepted a file without steps")
		}
		// Whatever it read renders.
		_ = newReport(env, runs).markdown(nil)
	})
}
