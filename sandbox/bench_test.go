//go:build linux

package sandbox

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"testing"
)

// BenchmarkSandboxColdStart measures a fresh sandbox up to a Python
// interpreter ready to work: Command (interpreter probe, cgroup, seccomp
// filter), Start, and the first line answered on stdin; then Close
// (kill, cgroup removal) — what a plugin or a pooled interpreter pays
// once.
// "resolve" resolves the interpreter each time (the zero Config);
// "resolved" reuses a Runtime, as the bridge does.
func BenchmarkSandboxColdStart(b *testing.B) {
	b.Run("resolve", func(b *testing.B) { benchColdStart(b, Config{Python: testPython(b)}) })
	b.Run("resolved", func(b *testing.B) { benchColdStart(b, resolvedConfig(b)) })
}

func resolvedConfig(b *testing.B) Config {
	rt, err := ResolvePython(context.Background(), testPython(b))
	if err != nil {
		b.Fatal(err)
	}
	return Config{Runtime: &rt}
}

func benchColdStart(b *testing.B, cfg Config) {
	ctx := context.Background()
	for b.Loop() {
		c, err := Command(ctx, cfg, "python", "-u", "-c", "import sys\nfor line in sys.stdin: print(line.strip(), flush=True)")
		if err != nil {
			b.Fatal(err)
		}
		in, err := c.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		out, err := c.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		if _, err := in.Write([]byte("ready\n")); err != nil {
			b.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			b.Fatalf("%q, %v", line, err)
		}
		c.Close()
	}
}

// BenchmarkSandboxRun measures Run of a trivial snippet end to end, and
// the same snippet run by plain os/exec with no sandbox, for comparison.
func BenchmarkSandboxRun(b *testing.B) {
	python := testPython(b)
	ctx := context.Background()
	run := func(b *testing.B, cfg Config) {
		for b.Loop() {
			res, err := Run(ctx, cfg, nil, "python", "-c", "print(6*7)")
			if err != nil || strings.TrimSpace(string(res.Stdout)) != "42" {
				b.Fatalf("%+v, %v", res, err)
			}
		}
	}
	b.Run("sandboxed/resolve", func(b *testing.B) { run(b, Config{Python: python}) })
	b.Run("sandboxed/resolved", func(b *testing.B) { run(b, resolvedConfig(b)) })
	b.Run("unsandboxed", func(b *testing.B) {
		for b.Loop() {
			out, err := exec.Command(python, "-c", "print(6*7)").Output()
			if err != nil || strings.TrimSpace(string(out)) != "42" {
				b.Fatalf("%q, %v", out, err)
			}
		}
	})
}
