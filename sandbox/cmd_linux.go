//go:build linux

package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Cmd is a command prepared to run in a sandbox. Set Stdin, Stdout and
// Stderr (or take pipes) before Start, as with os/exec; then Wait, and
// Close in every case: Close kills what is still running and removes the
// cgroup. Wait, Kill and Close are safe for concurrent use and may be
// called more than once.
type Cmd struct {
	// Stdin, Stdout and Stderr are as in exec.Cmd. Nil Stdin reads from
	// the null device; nil Stdout or Stderr discards.
	Stdin          io.Reader
	Stdout, Stderr io.Writer

	cfg     Config
	python  string // the interpreter resolved
	cmd     *exec.Cmd
	cg      *cgroup
	seccomp *os.File
	prot    Protections
	// unsafeDir is the working directory of an Unsafe command.
	unsafeDir string

	stopCtx func() bool // ends the context watch
	timer   *time.Timer
	// exited closes when the command has exited (ends the cgroup watch).
	exited chan struct{}

	mu       sync.Mutex
	started  bool
	waited   bool
	killedBy string

	waitOnce  sync.Once
	waitErr   error
	closeOnce sync.Once
}

// namespaces bwrap creates for every sandbox.
var namespaces = []string{"user", "pid", "net", "ipc", "uts", "cgroup", "mount"}

// Command prepares argv to run in a sandbox set up by cfg. argv[0] is a
// path visible inside; "python" or "python3" means cfg's interpreter.
// It fails with ErrUnavailable (and why) when bubblewrap or the
// interpreter is missing; a failure of bwrap itself shows on the
// command's stderr ("bwrap: ...", exit status 1). Cancelling ctx kills the
// command. The caller must call Close.
func Command(ctx context.Context, cfg Config, argv ...string) (*Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("sandbox: no command")
	}
	cfg = cfg.withDefaults()
	var rt Runtime
	if cfg.Runtime != nil {
		rt = *cfg.Runtime
	} else {
		var err error
		if rt, err = ResolvePython(ctx, cfg.Python); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	argv = slices.Clone(argv)
	if argv[0] == "python" || argv[0] == "python3" {
		argv[0] = rt.Executable
	}
	for _, p := range slices.Concat(cfg.ReadOnly, cfg.ReadWrite) {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("sandbox: path %s is not absolute", p)
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	c := &Cmd{cfg: cfg, python: rt.Executable}
	env := buildEnv(cfg.Env, rt)
	if cfg.Unsafe {
		// No /scratch: a private temporary directory stands in for it.
		dir, err := os.MkdirTemp("", "dspex-unsafe-")
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		c.unsafeDir = dir
		for _, k := range []string{"HOME", "TMPDIR"} {
			if _, set := cfg.Env[k]; !set {
				env[k] = dir
			}
		}
	}
	plan := helperPlan{Rlimits: rlimits(cfg.Limits)}
	c.prot.Rlimits = true
	var helperArgs []string
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var extra []*os.File
	if cfg.Unsafe {
		c.prot.Unsafe = true
		c.prot.HostUID = os.Getuid()
		c.prot.Notes = append(c.prot.Notes, "unsafe: no isolation (the caller opted out)")
		helperArgs = argv
	} else {
		bwrap, err := exec.LookPath("bwrap")
		if err != nil {
			return nil, fmt.Errorf("%w: bubblewrap (bwrap) not found in $PATH: install it (`make setup` does, or apt-get install bubblewrap)", ErrUnavailable)
		}
		mounts, err := rt.mounts()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		c.seccomp, err = seccompFile()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		c.prot.Seccomp = true
		c.prot.Namespaces = slices.Clone(namespaces)
		c.prot.HostUID = os.Getuid()
		if c.cg, err = newCgroup(cfg.Limits); err == nil {
			c.prot.Cgroup = "v" + strconv.Itoa(c.cg.version)
			plan.Procs = c.cg.procsFiles()
		} else {
			c.prot.Notes = append(c.prot.Notes, "no cgroup: "+err.Error())
			if os.Getuid() == 0 {
				// Root's processes ignore RLIMIT_NPROC, and the user
				// namespace maps the sandbox back to root: run it as a
				// real unprivileged uid instead, where the limit binds.
				attr.Credential = &syscall.Credential{Uid: UID, Gid: GID, Groups: []uint32{}}
				c.prot.HostUID = UID
			}
		}
		extra = []*os.File{c.seccomp}
		helperArgs = slices.Concat([]string{bwrap}, bwrapArgs(cfg, mounts, env, 3), []string{"--"}, argv)
	}
	spec, err := json.Marshal(plan)
	if err != nil {
		c.release()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	c.cmd = &exec.Cmd{
		// The running executable, even if its file was replaced since.
		Path:        "/proc/self/exe",
		Args:        append([]string{helperName}, helperArgs...),
		Env:         []string{helperEnv + "=" + string(spec)},
		ExtraFiles:  extra,
		SysProcAttr: attr,
		// Grandchildren holding the output pipes must not hold Wait up
		// (they cannot outlive bwrap's pid namespace, but Unsafe has none).
		WaitDelay: time.Second,
	}
	if cfg.Unsafe {
		// The helper execs argv directly: env travels through it.
		c.cmd.Args = append([]string{helperName, "/usr/bin/env", "-i"}, append(envList(env), argv...)...)
		c.cmd.Dir = c.unsafeDir
	}
	c.stopCtx = context.AfterFunc(ctx, func() { c.kill("") })
	return c, nil
}

// buildEnv is the command's environment: cfg's, or the default, with
// PATH, HOME and TMPDIR filled in.
func buildEnv(env map[string]string, rt Runtime) map[string]string {
	out := map[string]string{"LANG": "C.UTF-8"}
	if env != nil {
		out = map[string]string{}
		for k, v := range env {
			out[k] = v
		}
	}
	defaults := map[string]string{
		"PATH":   filepath.Dir(rt.Executable) + ":/usr/bin:/bin",
		"HOME":   Scratch,
		"TMPDIR": "/tmp",
	}
	for k, v := range defaults {
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	return out
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// bwrapArgs are bwrap's options; the seccomp filter is at seccompFD.
func bwrapArgs(cfg Config, mounts []string, env map[string]string, seccompFD int) []string {
	size := strconv.FormatInt(cfg.Limits.TmpSize, 10)
	args := []string{
		"--unshare-all", "--unshare-user", "--unshare-cgroup", "--disable-userns",
		"--die-with-parent", "--new-session",
		"--uid", strconv.Itoa(UID), "--gid", strconv.Itoa(GID),
		"--cap-drop", "ALL",
		"--hostname", "sandbox",
		"--proc", "/proc",
		"--dev", "/dev",
		"--perms", "01777", "--size", size, "--tmpfs", "/tmp",
		"--perms", "0700", "--size", size, "--tmpfs", Scratch,
	}
	args = append(args, mounts...)
	for _, p := range cfg.ReadOnly {
		args = append(args, "--ro-bind", p, p)
	}
	for _, p := range cfg.ReadWrite {
		args = append(args, "--bind", p, p)
	}
	args = append(args, "--remount-ro", "/", "--remount-ro", "/dev", "--chdir", Scratch, "--clearenv")
	for _, kv := range envList(env) {
		k, v, _ := strings.Cut(kv, "=")
		args = append(args, "--setenv", k, v)
	}
	return append(args, "--seccomp", strconv.Itoa(seccompFD))
}

// rlimits are the helper's (resource, soft, hard) triples for l.
func rlimits(l Limits) [][3]uint64 {
	var out [][3]uint64
	add := func(res int, v int64, extra uint64) {
		if v > 0 {
			out = append(out, [3]uint64{uint64(res), uint64(v), uint64(v) + extra})
		}
	}
	if l.CPU > 0 {
		secs := int64(math.Ceil(l.CPU.Seconds()))
		// The soft limit sends SIGXCPU; the hard one, a second on, SIGKILL.
		add(unix.RLIMIT_CPU, secs, 1)
	}
	add(unix.RLIMIT_AS, l.AddressSpace, 0)
	add(unix.RLIMIT_NPROC, int64(l.Processes), 0)
	add(unix.RLIMIT_FSIZE, l.FileSize, 0)
	add(unix.RLIMIT_NOFILE, int64(l.OpenFiles), 0)
	// No core dumps: a crash must not write the process's memory out.
	return append(out, [3]uint64{unix.RLIMIT_CORE, 0, 0})
}

// Protections reports the layers guarding the command.
func (c *Cmd) Protections() Protections { return c.prot }

// StdinPipe, StdoutPipe and StderrPipe are as in exec.Cmd.
func (c *Cmd) StdinPipe() (io.WriteCloser, error) { return c.cmd.StdinPipe() }
func (c *Cmd) StdoutPipe() (io.ReadCloser, error) { return c.cmd.StdoutPipe() }
func (c *Cmd) StderrPipe() (io.ReadCloser, error) { return c.cmd.StderrPipe() }

// Start starts the command; the timeout runs from here.
func (c *Cmd) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return errors.New("sandbox: already started")
	}
	if c.killedBy != "" || c.cmd == nil {
		return errors.New("sandbox: killed before it started")
	}
	if c.Stdin != nil {
		c.cmd.Stdin = c.Stdin
	}
	if c.Stdout != nil {
		c.cmd.Stdout = c.Stdout
	}
	if c.Stderr != nil {
		c.cmd.Stderr = c.Stderr
	}
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("sandbox: start: %w", err)
	}
	c.started = true
	if c.cfg.Timeout > 0 {
		c.timer = time.AfterFunc(c.cfg.Timeout, func() { c.kill(KilledByTimeout) })
	}
	c.exited = make(chan struct{})
	if c.cg != nil {
		go c.cg.watch(c.exited, c.kill)
	}
	return nil
}

// Pid is the process id of the sandbox's outermost process (bwrap), 0
// before Start.
func (c *Cmd) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		return 0
	}
	return c.cmd.Process.Pid
}

// Wait waits for the command to exit, kills anything left in its
// sandbox, and removes the cgroup. Its error is as exec.Cmd.Wait's.
func (c *Cmd) Wait() error {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started {
		return errors.New("sandbox: not started")
	}
	c.waitOnce.Do(func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
		if c.timer != nil {
			c.timer.Stop()
		}
		c.stopCtx()
		c.mu.Lock()
		c.waited = true
		if c.killedBy == "" {
			c.killedBy = c.classify()
		}
		c.mu.Unlock()
		c.release()
	})
	return c.waitErr
}

// classify names the limit that ended the command (the caller holds mu).
func (c *Cmd) classify() string {
	if c.cg != nil && c.cg.oomKilled() {
		return KilledByMemory
	}
	ps := c.cmd.ProcessState
	if ps == nil {
		return ""
	}
	sig := -1
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		sig = int(ws.Signal())
	} else if !c.cfg.Unsafe && ps.ExitCode() > 128 && ps.ExitCode() < 128+65 {
		// bwrap exits with 128+N when its payload dies of signal N.
		sig = ps.ExitCode() - 128
	}
	// A command that ignores SIGXCPU dies of SIGKILL at the hard CPU
	// limit a second later, reported as "signal:9".
	switch {
	case sig < 0:
		return ""
	case sig == int(syscall.SIGXCPU):
		return KilledByCPU
	case sig == int(syscall.SIGXFSZ):
		return KilledByFileSize
	}
	return "signal:" + strconv.Itoa(sig)
}

// KilledBy names the limit that ended the command (see Result.KilledBy);
// valid after Wait.
func (c *Cmd) KilledBy() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.killedBy
}

// ExitCode is the command's exit status after Wait: -1 when a signal
// ended it (bwrap reports a payload's death by signal N as 128+N, which
// counts as a signal here).
func (c *Cmd) ExitCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.waited || c.cmd.ProcessState == nil {
		return -1
	}
	if c.killedBy != "" {
		return -1
	}
	return c.cmd.ProcessState.ExitCode()
}

// ProcessState is the exited process's state after Wait (bwrap's, when
// sandboxed).
func (c *Cmd) ProcessState() *os.ProcessState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd.ProcessState
}

// Kill kills everything in the sandbox.
func (c *Cmd) Kill() { c.kill("") }

// kill ends the sandbox, recording why (reason "" records nothing).
func (c *Cmd) kill(reason string) {
	c.mu.Lock()
	if c.waited {
		c.mu.Unlock()
		return
	}
	if c.killedBy == "" && reason != "" {
		c.killedBy = reason
	}
	if !c.started {
		if c.killedBy == "" {
			c.killedBy = "signal:9"
		}
		c.mu.Unlock()
		return
	}
	pid := c.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = c.cmd.Process.Kill()
	cg := c.cg
	c.mu.Unlock()
	if cg != nil {
		cg.kill()
	}
}

// Close kills the command if it still runs, waits for it, and releases
// the sandbox's cgroup and files.
func (c *Cmd) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		started := c.started
		c.mu.Unlock()
		if started {
			c.Kill()
			_ = c.Wait()
			return
		}
		c.stopCtx()
		c.release()
	})
	return nil
}

// release removes the cgroup and closes the filter's file.
func (c *Cmd) release() {
	if c.cg != nil {
		c.cg.remove()
	}
	if c.seccomp != nil {
		c.seccomp.Close()
	}
	if c.unsafeDir != "" {
		_ = os.RemoveAll(c.unsafeDir)
	}
}

// bwrapVersion returns bwrap's path and version line, or "" for each.
func bwrapVersion(ctx context.Context) (string, string) {
	path, err := exec.LookPath("bwrap")
	if err != nil {
		return "", ""
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return path, ""
	}
	return path, strings.TrimSpace(string(out))
}
