//go:build linux

package sandbox

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The hostile suite: each case is Python an attacker might send, run with
// Run and the system python3. Each asserts its specific containment and
// that the next run in a fresh sandbox still works. It runs in CI as root
// on a fresh machine, where a sandbox must be available: it fails, not
// skips, when none is (set DSPEX_SANDBOX_SKIP=1 to skip on a machine
// known to lack one).

// hostileSecret is set in the test process's environment; no sandbox may
// see it.
const hostileSecret = "DSPEX_HOSTILE_SECRET"

func requireSandbox(t testing.TB) Config {
	t.Helper()
	cfg := Config{Python: testPython(t), Timeout: 20 * time.Second}
	if os.Getenv("DSPEX_SANDBOX_SKIP") == "1" {
		t.Skip("DSPEX_SANDBOX_SKIP=1")
	}
	rep := Check(ctxT(t, 30*time.Second), cfg)
	if !rep.Available {
		t.Fatalf("no working sandbox on this machine: %s (run `make setup` to install bubblewrap)", rep.Reason)
	}
	return cfg
}

// runPy runs code with the system python in a sandbox made from cfg.
func runPy(t *testing.T, cfg Config, code string) Result {
	t.Helper()
	res, err := Run(ctxT(t, 2*time.Minute), cfg, nil, "python", "-c", code)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Logf("exit %d killed_by %q in %s\nstdout: %.300s\nstderr: %.600s", res.ExitCode, res.KilledBy, res.Duration, res.Stdout, res.Stderr)
	return res
}

// stillWorks checks that a trivial run after a hostile one is fine.
func stillWorks(t *testing.T, cfg Config) {
	t.Helper()
	res := runPy(t, Config{Python: cfg.Python}, "print(6*7)")
	if res.ExitCode != 0 || strings.TrimSpace(string(res.Stdout)) != "42" || res.KilledBy != "" {
		t.Fatalf("a trivial run after the hostile one: exit %d, killed by %q, stdout %q, stderr %q",
			res.ExitCode, res.KilledBy, res.Stdout, res.Stderr)
	}
}

func wantOK(t *testing.T, res Result, stdout string) {
	t.Helper()
	if res.ExitCode != 0 || res.KilledBy != "" {
		t.Fatalf("exit %d, killed by %q; stderr: %s", res.ExitCode, res.KilledBy, res.Stderr)
	}
	if got := strings.TrimSpace(string(res.Stdout)); got != stdout {
		t.Fatalf("stdout %q, want %q; stderr: %s", got, stdout, res.Stderr)
	}
}

// hostPids counts the processes the host can see.
func hostPids(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			n++
		}
	}
	return n
}

// sandboxCgroupsLeft lists the cgroups of this process's sandboxes still
// present.
func sandboxCgroupsLeft() []string {
	var left []string
	name := cgroupPrefix + strconv.Itoa(os.Getpid()) + "-*"
	for _, pattern := range []string{
		"/sys/fs/cgroup/" + name, "/sys/fs/cgroup/*/" + name, "/sys/fs/cgroup/*/*/" + name, "/sys/fs/cgroup/*/*/*/" + name,
	} {
		m, _ := filepath.Glob(pattern)
		left = append(left, m...)
	}
	return left
}

func TestHostile(t *testing.T) {
	cfg := requireSandbox(t)
	t.Setenv(hostileSecret, "s3cr3t-value")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Dir(wd)
	selfPid := strconv.Itoa(os.Getpid())
	// /root exists inside only when the interpreter lives under it (pyenv
	// as root), and then holds only that runtime.
	rt, err := ResolvePython(ctxT(t, 30*time.Second), cfg.Python)
	if err != nil {
		t.Fatal(err)
	}
	rootSeen := "False"
	for _, p := range append([]string{rt.Executable}, rt.Prefixes...) {
		if strings.HasPrefix(p, "/root/") {
			rootSeen = "True"
		}
	}
	// A host process the sandbox must not be able to signal.
	victim := exec.Command("sleep", "300")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = victim.Process.Kill(); _ = victim.Wait() })
	victimPid := strconv.Itoa(victim.Process.Pid)
	cgroupOK := Check(ctxT(t, 30*time.Second), cfg).Protections.Cgroup != ""

	cases := []struct {
		name  string
		cfg   func(Config) Config
		code  string
		check func(t *testing.T, res Result)
	}{
		{
			name: "network socket",
			code: `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(3)
try:
    s.connect(("1.1.1.1", 80))
    print("connected")
except OSError as e:
    print("blocked", e.errno)`,
			check: func(t *testing.T, res Result) {
				if !strings.HasPrefix(string(res.Stdout), "blocked") {
					t.Fatalf("connect was not blocked: %q", res.Stdout)
				}
			},
		},
		{
			name: "network interfaces and name resolution",
			code: `import socket
print(sorted(n for _, n in socket.if_nameindex()))
try:
    print(socket.getaddrinfo("example.com", 80))
except OSError as e:
    print("no-resolve")`,
			check: func(t *testing.T, res Result) { wantOK(t, res, "['lo']\nno-resolve") },
		},
		{
			name: "read /etc/shadow",
			code: `try:
    open("/etc/shadow").read(); print("read")
except OSError as e:
    print(type(e).__name__)`,
			check: func(t *testing.T, res Result) { wantOK(t, res, "FileNotFoundError") },
		},
		{
			name:  "etc holds nothing but ld.so.cache",
			code:  `import os; print(os.listdir("/etc"))`,
			check: func(t *testing.T, res Result) { wantOK(t, res, "['ld.so.cache']") },
		},
		{
			name: "home directories and ssh keys",
			code: `import os
for p in ["/root", "/home", os.path.expanduser("~/.ssh"), "/root/.ssh/id_rsa", "/root/.bash_history"]:
    print(p, os.path.exists(p))`,
			check: func(t *testing.T, res Result) {
				wantOK(t, res, "/root "+rootSeen+"\n/home False\n/scratch/.ssh False\n/root/.ssh/id_rsa False\n/root/.bash_history False")
			},
		},
		{
			// The repository's directory itself may exist, as the parent of
			// a virtualenv inside it; its files must not.
			name: "the repository",
			code: `import os; print(os.path.exists(` + strconv.Quote(filepath.Join(repo, "go.mod")) + `), os.path.exists(` +
				strconv.Quote(filepath.Join(repo, "sandbox", "hostile_test.go")) + `))`,
			check: func(t *testing.T, res Result) { wantOK(t, res, "False False") },
		},
		{
			name: "another process's environ",
			code: `import os
for pid in ["1", "2", ` + strconv.Quote(selfPid) + `]:
    try:
        print(pid, len(open("/proc/%s/environ" % pid, "rb").read()) >= 0 and b"` + hostileSecret + `" in open("/proc/%s/environ" % pid, "rb").read())
    except OSError as e:
        print(pid, type(e).__name__)
print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))`,
			check: func(t *testing.T, res Result) {
				if bytes.Contains(res.Stdout, []byte("True")) {
					t.Fatalf("saw the secret through /proc: %s", res.Stdout)
				}
				// Only the sandbox's own processes exist: bwrap's init (1)
				// and the payload (2).
				if !strings.Contains(string(res.Stdout), "[1, 2]") {
					t.Fatalf("saw processes beyond the sandbox's: %s", res.Stdout)
				}
			},
		},
		{
			name:  "the host environment",
			code:  `import os; print(os.environ.get("` + hostileSecret + `"), sorted(os.environ))`,
			check: func(t *testing.T, res Result) { wantOK(t, res, "None ['HOME', 'LANG', 'PATH', 'PWD', 'TMPDIR']") },
		},
		{
			name: "write outside scratch",
			code: `import os
for p in ["/x", "/usr/lib/x", "/etc/x", "/proc/x", "/dev/x", "/scratch/ok", "/tmp/ok"]:
    try:
        open(p, "w").write("x"); print(p, "written")
    except OSError as e:
        print(p, "refused")`,
			check: func(t *testing.T, res Result) {
				wantOK(t, res, "/x refused\n/usr/lib/x refused\n/etc/x refused\n/proc/x refused\n/dev/x refused\n/scratch/ok written\n/tmp/ok written")
			},
		},
		{
			// The cgroup's pids.max refuses a fork at the cap, and the
			// sandbox is killed at once for it, long before the timeout;
			// without a cgroup RLIMIT_NPROC (as host uid 65534) contains
			// it until the timeout.
			name: "fork bomb",
			cfg:  func(c Config) Config { c.Timeout = 10 * time.Second; return c },
			code: `import os
while True:
    try:
        os.fork()
    except OSError:
        pass`,
			check: func(t *testing.T, res Result) {
				if cgroupOK && (res.KilledBy != KilledByProcesses || res.Duration > 5*time.Second) {
					t.Fatalf("killed by %q after %s, want processes, well before the timeout", res.KilledBy, res.Duration)
				}
				if !cgroupOK && res.KilledBy != KilledByTimeout {
					t.Fatalf("killed by %q, want timeout (no cgroup)", res.KilledBy)
				}
			},
		},
		{
			name: "memory far past the limit",
			cfg:  func(c Config) Config { c.Limits.Memory = 128 << 20; return c },
			code: `chunks = []
while True:
    chunks.append(b"x" * (16 << 20))`,
			check: func(t *testing.T, res Result) {
				// Pages written, 16 MiB at a time: the cgroup's OOM killer
				// ends it long before RLIMIT_AS (4 × 128 MiB) refuses one.
				if cgroupOK && res.KilledBy != KilledByMemory {
					t.Fatalf("killed by %q, stderr %q: want memory", res.KilledBy, res.Stderr)
				}
				if !cgroupOK && !bytes.Contains(res.Stderr, []byte("MemoryError")) {
					t.Fatalf("killed by %q, stderr %q: want MemoryError (no cgroup)", res.KilledBy, res.Stderr)
				}
			},
		},
		{
			name: "one huge allocation",
			code: `b = bytearray(64 << 30)`,
			check: func(t *testing.T, res Result) {
				if !bytes.Contains(res.Stderr, []byte("MemoryError")) && res.KilledBy != KilledByMemory {
					t.Fatalf("killed by %q, stderr %q: want MemoryError", res.KilledBy, res.Stderr)
				}
			},
		},
		{
			name: "infinite loop, cpu limit",
			cfg:  func(c Config) Config { c.Limits.CPU = time.Second; return c },
			code: `while True: pass`,
			check: func(t *testing.T, res Result) {
				if res.KilledBy != KilledByCPU {
					t.Fatalf("killed by %q, want cpu", res.KilledBy)
				}
			},
		},
		{
			name: "sleeping forever, wall clock",
			cfg:  func(c Config) Config { c.Timeout = time.Second; return c },
			code: `import time; time.sleep(3600)`,
			check: func(t *testing.T, res Result) {
				if res.KilledBy != KilledByTimeout || res.Duration > 10*time.Second {
					t.Fatalf("killed by %q after %s, want timeout after 1s", res.KilledBy, res.Duration)
				}
			},
		},
		{
			name: "print gigabytes",
			cfg:  func(c Config) Config { c.OutputLimit = 64 << 10; return c },
			code: `import sys
line = "x" * 1023 + "\n"
while True:
    sys.stdout.write(line)`,
			check: func(t *testing.T, res Result) {
				if res.KilledBy != KilledByOutput || len(res.Stdout) != 64<<10 {
					t.Fatalf("killed by %q with %d bytes kept, want output at 65536", res.KilledBy, len(res.Stdout))
				}
			},
		},
		{
			name: "fill the disk, one file",
			code: `import signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
f = open("/scratch/big", "wb")
try:
    while True:
        f.write(b"x" * (1 << 20)); f.flush()
except OSError as e:
    print("stopped", e.errno)`,
			check: func(t *testing.T, res Result) { wantOK(t, res, "stopped 27") },
		},
		{
			name: "fill the disk, many files",
			code: `import os
n = 0
try:
    while True:
        with open("/tmp/f%d" % n, "wb") as f:
            f.write(b"x" * (8 << 20))
        n += 1
except OSError as e:
    print("stopped", e.errno, n <= 8)`,
			check: func(t *testing.T, res Result) { wantOK(t, res, "stopped 28 True") },
		},
		{
			name: "kill the parent, pid 1, host processes",
			code: `import os, signal
for pid in [os.getppid(), 1, ` + selfPid + `, ` + victimPid + `]:
    try:
        os.kill(pid, signal.SIGKILL); print(pid, "sent")
    except OSError as e:
        print(pid, type(e).__name__)
print("alive")`,
			check: func(t *testing.T, res Result) {
				// The parent is the sandbox's own init (pid 1), which the
				// kernel shields from SIGKILL sent from inside its
				// namespace; host pids do not exist there.
				wantOK(t, res, "1 sent\n1 sent\n"+selfPid+" ProcessLookupError\n"+victimPid+" ProcessLookupError\nalive")
				if err := victim.Process.Signal(syscall.Signal(0)); err != nil {
					t.Fatalf("the host process is gone: %v", err)
				}
			},
		},
		{
			name: "os._exit",
			code: `import os; print("bye", flush=True); os._exit(7)`,
			check: func(t *testing.T, res Result) {
				if res.ExitCode != 7 || res.KilledBy != "" || string(res.Stdout) != "bye\n" {
					t.Fatalf("exit %d killed by %q stdout %q, want 7", res.ExitCode, res.KilledBy, res.Stdout)
				}
			},
		},
		{
			name: "segfault through ctypes",
			code: `import ctypes; ctypes.string_at(0)`,
			check: func(t *testing.T, res Result) {
				if res.KilledBy != "signal:11" {
					t.Fatalf("killed by %q, want signal:11", res.KilledBy)
				}
			},
		},
		{
			name: "deep recursion",
			cfg:  func(c Config) Config { c.Limits.Memory = 128 << 20; return c },
			code: `import sys
sys.setrecursionlimit(10**8)
def f(n): return f(n + 1)
f(0)`,
			check: func(t *testing.T, res Result) {
				// Python 3.11+ keeps Python frames on the heap: the memory
				// limit (cgroup, else RLIMIT_AS: MemoryError) ends it, or
				// the C stack overflows (SIGSEGV) first. Under RLIMIT_AS alone
				// CPython 3.11 may fail with a SystemError.
				if res.KilledBy != KilledByMemory && res.KilledBy != "signal:11" && (res.ExitCode != 1 ||
					!bytes.Contains(res.Stderr, []byte("Error"))) {
					t.Fatalf("killed by %q, want memory or signal:11", res.KilledBy)
				}
			},
		},
		{
			name: "symlinks in scratch",
			code: `import os
os.symlink("/etc/shadow", "/scratch/s")
os.symlink("/root/.ssh", "/scratch/r")
os.symlink("/proc/1/root/root/.bashrc", "/scratch/p")
for p in ["/scratch/s", "/scratch/r", "/scratch/p"]:
    try:
        print(p, os.listdir(p) if os.path.isdir(p) else open(p).read())
    except OSError as e:
        print(p, type(e).__name__)`,
			check: func(t *testing.T, res Result) {
				wantOK(t, res, "/scratch/s FileNotFoundError\n/scratch/r FileNotFoundError\n/scratch/p FileNotFoundError")
			},
		},
		{
			name: "mount, ptrace, unshare, root",
			code: `import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    r = getattr(libc, name)(*args)
    return "ok" if r == 0 else os.strerror(ctypes.get_errno())
print("uid", os.getuid(), os.geteuid(), os.getgid())
print("mount", call("mount", b"none", b"/tmp", b"tmpfs", 0, None))
print("ptrace", call("ptrace", 16, 1, None, None))
print("unshare", call("unshare", 0x10000000))
print("setuid", call("setuid", 0), os.getuid())
print("chroot", call("chroot", b"/tmp"))`,
			check: func(t *testing.T, res Result) {
				wantOK(t, res, "uid 65534 65534 65534\nmount Operation not permitted\nptrace Operation not permitted\n"+
					"unshare Operation not permitted\nsetuid Invalid argument 65534\nchroot Operation not permitted")
			},
		},
	}
	if runtime.GOARCH == "amd64" {
		cases = append(cases, struct {
			name  string
			cfg   func(Config) Config
			code  string
			check func(t *testing.T, res Result)
		}{
			// i386 system calls (int 0x80) from a 64-bit process must not
			// slip past the seccomp filter: the process is killed.
			name: "seccomp: foreign-architecture system call",
			code: `import ctypes, mmap
buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(b"\xb8\x14\x00\x00\x00\xcd\x80\xc3")  # mov eax, 20 (i386 getpid); int 0x80; ret
f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
print("i386 getpid:", f())`,
			check: func(t *testing.T, res Result) {
				if res.KilledBy != "signal:"+strconv.Itoa(int(syscall.SIGSYS)) {
					t.Fatalf("killed by %q, stdout %q: want SIGSYS", res.KilledBy, res.Stdout)
				}
			},
		})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.cfg != nil {
				c = tc.cfg(c)
			}
			tc.check(t, runPy(t, c, tc.code))
			stillWorks(t, cfg)
		})
	}
	if left := sandboxCgroupsLeft(); len(left) > 0 {
		t.Errorf("sandbox cgroups left behind: %v", left)
	}
}

// The fork bomb is contained: the sandbox's cgroup refuses forks past
// Processes (pids.max, else RLIMIT_NPROC as host uid 65534), the sandbox
// is killed for it at once (at the timeout without a cgroup), and the
// host's process count is back where it was afterwards.
func TestHostileForkBombContained(t *testing.T) {
	cfg := requireSandbox(t)
	before := hostPids(t)
	cfg.Timeout = 8 * time.Second
	cfg.Limits.Processes = 32
	c, err := Command(ctxT(t, time.Minute), cfg, "python", "-c", `import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)`)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	_ = c.Wait()
	took := time.Since(start)
	t.Logf("killed by %q after %s (cgroup %q)", c.KilledBy(), took, c.Protections().Cgroup)
	if c.Protections().Cgroup != "" && (c.KilledBy() != KilledByProcesses || took > cfg.Timeout/2) {
		t.Errorf("killed by %q after %s, want processes well before the %s timeout", c.KilledBy(), took, cfg.Timeout)
	}
	if c.Protections().Cgroup == "" && c.KilledBy() != KilledByTimeout {
		t.Errorf("killed by %q, want timeout (no cgroup)", c.KilledBy())
	}
	// Other work on the machine moves the host's count too: the slack is
	// generous, a fork bomb that got out would not fit in it.
	deadline := time.Now().Add(5 * time.Second)
	for hostPids(t) > before+cfg.Limits.Processes && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if after := hostPids(t); after > before+cfg.Limits.Processes {
		t.Errorf("host processes: %d before, %d after", before, after)
	}
	stillWorks(t, cfg)
}
