//go:build linux

package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// probeScript prints the runtime as JSON.
const probeScript = `import json, sys
print(json.dumps({"executable": sys.executable,
  "prefixes": sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}),
  "path": [p for p in sys.path if p]}))`

// ResolvePython asks the interpreter python (a path, or a name looked up
// in $PATH) where it lives: a pyenv shim or a symlink resolves to the real
// interpreter this way. Command does this on each call unless
// Config.Runtime is set; a caller that starts many sandboxes resolves
// once (a few tens of milliseconds saved per sandbox).
func ResolvePython(ctx context.Context, python string) (Runtime, error) {
	path, err := exec.LookPath(python)
	if err != nil {
		return Runtime{}, fmt.Errorf("python interpreter %s: %w", python, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-I", "-c", probeScript)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return Runtime{}, fmt.Errorf("probe python interpreter %s: %w", path, err)
	}
	var rt Runtime
	if err := json.Unmarshal(out, &rt); err != nil || rt.Executable == "" {
		return Runtime{}, fmt.Errorf("probe python interpreter %s: unexpected answer %q", path, out)
	}
	return rt, nil
}

// systemLibDirs are the shared-library directories made visible
// read-only (those that exist; a symlink such as merged-usr's /lib is
// recreated as the same symlink).
var systemLibDirs = []string{"/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32"}

// sharedPrefixes are prefixes too broad to expose whole: a Python
// installed there brings only its sys.path directories and executable.
var sharedPrefixes = []string{"/", "/usr", "/usr/local", "/opt"}

// mounts are bwrap's filesystem arguments for the runtime, in order.
func (rt Runtime) mounts() ([]string, error) {
	var args []string
	bound := map[string]bool{}
	covered := func(p string) bool {
		for d := range bound {
			if p == d || strings.HasPrefix(p, d+"/") {
				return true
			}
		}
		return false
	}
	bind := func(p string) {
		if p == "" || p == "/" || covered(p) {
			return
		}
		if _, err := os.Stat(p); err != nil {
			return
		}
		bound[p] = true
		args = append(args, "--ro-bind", p, p)
	}
	for _, d := range systemLibDirs {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(d)
			if err == nil {
				args = append(args, "--symlink", target, d)
			}
		case fi.IsDir():
			bind(d)
		}
	}
	for _, p := range rt.Prefixes {
		if !contains(sharedPrefixes, filepath.Clean(p)) {
			bind(filepath.Clean(p))
		}
	}
	for _, p := range rt.Path {
		p = filepath.Clean(p)
		if !contains(sharedPrefixes, p) {
			bind(p)
		}
	}
	// The executable and each symlink on the way to the real file
	// (/usr/bin/python3 → python3.11).
	p := rt.Executable
	for range 16 {
		if covered(p) {
			break
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, fmt.Errorf("python interpreter %s: %w", p, err)
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			bind(p)
			break
		}
		target, err := os.Readlink(p)
		if err != nil {
			return nil, fmt.Errorf("python interpreter %s: %w", p, err)
		}
		if !covered(filepath.Dir(p)) {
			args = append(args, "--dir", filepath.Dir(p))
		}
		args = append(args, "--symlink", target, p)
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = target
	}
	// The dynamic loader's cache only speeds up library lookups.
	args = append(args, "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache")
	return args, nil
}
