package codeacttest

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dspex/dspex/bridge"
	"github.com/dspex/dspex/sandbox"
)

// The hostile-code suite of issue 13: Python an attacker (or a confused
// LM) might send, each case with what it must observe. It runs through a
// pool of sandboxed interpreters (plugins/codeact's TestHostileCode) and
// through `dspex exec` (the CLI's TestExecHostile), so the two agree.

// HostileSecret is the variable HostileSetup plants in the test process's
// environment; no interpreter may see it.
const HostileSecret = "DSPEX_HOSTILE_SECRET"

// Hostile limits: the interpreter plugin's sandbox limits the suite runs
// with, small so that the memory and process cases end quickly.
const (
	HostileMemory    = 256 << 20
	HostileProcesses = 128
	// HostileTimeout is each execution's timeout.
	HostileTimeout = 3 * time.Second
)

// HostileEnv is what the cases refer to on the host.
type HostileEnv struct {
	// Secret is HostileSecret's value.
	Secret string
	// TestPid is the test process's pid; VictimPid a host process's (a
	// sleep the setup started) that the code tries to kill.
	TestPid, VictimPid int
	// Victim is that process.
	Victim *os.Process
	// Repo is the repository's root; Plugin the directory of the plugin's
	// code (bound read-only inside).
	Repo, Plugin string
	// Listener is a TCP listener on the host's loopback, which the code
	// must not reach.
	Listener net.Listener
	// Runtime is the interpreter's resolution: what of /root, if
	// anything, is visible inside (a pyenv interpreter lives there).
	Runtime sandbox.Runtime
	// Protections are those of a sandbox on this machine.
	Protections sandbox.Protections
}

// RequireSandbox returns the protections of a sandbox for python, or
// fails the test when none can be made: the hostile suite runs in CI as
// root on a fresh machine, where one must be (`make setup` installs
// bubblewrap). DSPEX_SANDBOX_SKIP=1 skips it on a machine known to lack
// one.
func RequireSandbox(t testing.TB, python string) sandbox.Report {
	t.Helper()
	if os.Getenv("DSPEX_SANDBOX_SKIP") == "1" {
		t.Skip("DSPEX_SANDBOX_SKIP=1")
	}
	rep := sandbox.Check(t.Context(), sandbox.Config{Python: python})
	if !rep.Available {
		t.Fatalf("no working sandbox on this machine: %s (run `make setup` to install bubblewrap, or set DSPEX_SANDBOX_SKIP=1)", rep.Reason)
	}
	return rep
}

// HostileSetup plants the secret, starts the victim process and the
// loopback listener (all undone when the test ends) and returns the
// environment of the cases. Call it before starting any interpreter, and
// not from a parallel test (it sets an environment variable).
func HostileSetup(t *testing.T, python string) *HostileEnv {
	t.Helper()
	rep := RequireSandbox(t, python)
	env := &HostileEnv{Secret: "s3cr3t-" + strconv.FormatInt(time.Now().UnixNano(), 36), TestPid: os.Getpid(),
		Repo: repoRoot(t), Protections: rep.Protections}
	env.Plugin = filepath.Join(env.Repo, "python")
	if rep.Runtime != nil {
		env.Runtime = *rep.Runtime
	}
	t.Setenv(HostileSecret, env.Secret)
	victim := exec.Command("sleep", "600")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = victim.Process.Kill(); _ = victim.Wait() })
	env.Victim, env.VictimPid = victim.Process, victim.Process.Pid
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	env.Listener = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return env
}

// HostileLimits are the interpreter plugin's sandbox limits for the suite.
func HostileLimits() bridge.SandboxLimits {
	return bridge.SandboxLimits{Memory: HostileMemory, Processes: HostileProcesses}
}

// HostFine checks that the host came through: the victim process lives,
// and the repository holds none of the files the code tried to write.
func (env *HostileEnv) HostFine(t testing.TB) {
	t.Helper()
	if err := env.Victim.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the host's victim process %d is gone: %v", env.VictimPid, err)
	}
	for _, p := range []string{filepath.Join(env.Plugin, "hostile-was-here"), filepath.Join(env.Repo, "hostile-was-here")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the code wrote %s on the host", p)
			_ = os.Remove(p)
		}
	}
}

// SandboxProcesses counts the processes in each live sandbox cgroup this
// test process made (package sandbox names them dspex-sandbox-<pid>-*),
// by cgroup name; none where there are no cgroups.
func SandboxProcesses() map[string]int {
	name := "dspex-sandbox-" + strconv.Itoa(os.Getpid()) + "-*"
	out := map[string]int{}
	for _, pattern := range []string{"/sys/fs/cgroup/" + name, "/sys/fs/cgroup/*/" + name,
		"/sys/fs/cgroup/*/*/" + name, "/sys/fs/cgroup/*/*/*/" + name, "/sys/fs/cgroup/*/*/*/*/" + name} {
		dirs, _ := filepath.Glob(pattern)
		for _, dir := range dirs {
			b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			if err != nil {
				continue
			}
			// On cgroup v1 each sandbox has a directory per controller.
			out[filepath.Base(dir)] = max(out[filepath.Base(dir)], len(strings.Fields(string(b))))
		}
	}
	return out
}

// NoLeftovers waits (up to 10 s) until no sandbox of this test process
// holds more than an interpreter's few processes (the limits helper's
// bwrap, bwrap's init, Python), and fails the test if one still does: what
// the code started died with its interpreter.
func NoLeftovers(t testing.TB) {
	t.Helper()
	const most = 4
	var over map[string]int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		over = map[string]int{}
		for name, n := range SandboxProcesses() {
			if n > most {
				over[name] = n
			}
		}
		if len(over) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(over) > 0 {
		t.Errorf("sandboxes still holding processes the code started: %v", over)
	}
}

// HostileCase is one hostile snippet and what it must observe.
type HostileCase struct {
	Name string
	Code string
	// ErrType is the type of the error the observation must carry ("" for
	// none), ErrText a substring of its message.
	ErrType, ErrText string
	// KilledBy is the observation's killed_by ("" for none).
	KilledBy string
	// Exit is dspex exec's "exit" (0 ran through, 1 raised, 124 timed out,
	// 128+N killed by signal N, else the process's exit code).
	Exit int
	// Stdout, when set, is the exact output; Check, when set, checks it
	// (and may fail the test).
	Stdout string
	Check  func(t testing.TB, stdout string)
	// Discard: the interpreter hit a limit or died, and the next execution
	// runs on a fresh one.
	Discard bool
	// Quick: it must end well before the execution's timeout.
	Quick bool
	// Tools: the case calls the suite's tools, which only the pool's
	// sessions have (dspex exec's have none).
	Tools bool
	// Next runs after the case and must give NextValue (defaults "6 * 7"
	// and "42").
	Next, NextValue string
}

// jsonLine decodes stdout, one JSON value, into out.
func jsonLine(t testing.TB, stdout string, out any) {
	t.Helper()
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), out); err != nil {
		t.Fatalf("the code's output is not the JSON expected: %v: %q", err, stdout)
	}
}

// HostileCases are the suite's cases, in env.
func HostileCases(env *HostileEnv) []HostileCase {
	q := strconv.Quote
	port := strconv.Itoa(env.Listener.Addr().(*net.TCPAddr).Port)
	// /root is visible only when the interpreter lives under it (a pyenv
	// as root), holding only that.
	var rootAllowed []string
	for _, p := range append([]string{env.Runtime.Executable}, env.Runtime.Prefixes...) {
		if rest, ok := strings.CutPrefix(p, "/root/"); ok {
			first, _, _ := strings.Cut(rest, "/")
			rootAllowed = append(rootAllowed, first)
		}
	}
	return []HostileCase{
		{
			Name: "network socket",
			Code: `import json, socket
out = {"ifaces": [n for _, n in socket.if_nameindex()]}
for name, addr in [("host_loopback", ("127.0.0.1", ` + port + `)), ("private", ("10.255.255.1", 80))]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(addr)
        out[name] = "connected"
    except OSError as e:
        out[name] = e.errno
    s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"x", ("10.255.255.1", 53))
    out["udp"] = "sent"
except OSError as e:
    out["udp"] = e.errno
print(json.dumps(out))`,
			// ECONNREFUSED (111): the loopback is the sandbox's own, where
			// nothing listens; ENETUNREACH (101): no route anywhere else.
			Stdout: `{"ifaces": ["lo"], "host_loopback": 111, "private": 101, "udp": 101}` + "\n",
		},
		{
			Name: "name resolution",
			Code: `import json, socket
out = {}
for name in ["localhost", "example.com"]:
    try:
        out[name] = socket.getaddrinfo(name, 80)[0][4][0]
    except OSError as e:
        out[name] = type(e).__name__
print(json.dumps(out))`,
			Stdout: `{"localhost": "gaierror", "example.com": "gaierror"}` + "\n",
		},
		{
			Name:    "read /etc/shadow",
			Code:    `open("/etc/shadow").read()`,
			ErrType: "FileNotFoundError", ErrText: "/etc/shadow", Exit: 1,
		},
		{
			Name: "host home directories and ssh keys",
			Code: `import json, os
paths = ["/home", "/root/.ssh", "/root/.bash_history", "/root/.bashrc", os.path.expanduser("~/.ssh"), "/etc/passwd"]
print(json.dumps({"home": os.path.expanduser("~"), "exists": [p for p in paths if os.path.exists(p)],
    "root": sorted(os.listdir("/root")) if os.path.isdir("/root") else None}))`,
			Check: func(t testing.TB, stdout string) {
				var got struct {
					Home   string
					Exists []string
					Root   []string
				}
				jsonLine(t, stdout, &got)
				if got.Home != sandbox.Scratch || len(got.Exists) > 0 {
					t.Errorf("home %q; host paths visible: %v", got.Home, got.Exists)
				}
				for _, e := range got.Root {
					if !slices.Contains(rootAllowed, e) {
						t.Errorf("/root/%s is visible (only the interpreter's runtime may be: %v)", e, rootAllowed)
					}
				}
			},
		},
		{
			// The plugin's code is bound read-only (the interpreter runs
			// it); nothing else of the repository is there.
			Name: "the repository",
			Code: `import json, os
paths = [` + q(filepath.Join(env.Repo, "go.mod")) + `, ` + q(filepath.Join(env.Repo, ".git")) + `, ` +
				q(filepath.Join(env.Repo, "sandbox", "hostile_test.go")) + `, ` + q(filepath.Join(env.Repo, "plugins")) + `]
print(json.dumps([p for p in paths if os.path.exists(p)]))`,
			Stdout: "[]\n",
		},
		{
			Name: "another process's environ",
			Code: `import json, os
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
seen = {}
for pid in pids + [` + strconv.Itoa(env.TestPid) + `, ` + strconv.Itoa(env.VictimPid) + `]:
    try:
        seen[pid] = ` + q(env.Secret) + `.encode() in open("/proc/%d/environ" % pid, "rb").read()
    except OSError as e:
        seen[pid] = type(e).__name__
print(json.dumps({"pids": pids, "secret_seen": [p for p, v in seen.items() if v is True],
    "host": [seen[` + strconv.Itoa(env.TestPid) + `], seen[` + strconv.Itoa(env.VictimPid) + `]]}))`,
			Check: func(t testing.TB, stdout string) {
				var got struct {
					Pids       []int
					SecretSeen []int `json:"secret_seen"`
					Host       []string
				}
				jsonLine(t, stdout, &got)
				// Only the sandbox's own processes: bwrap's init (1) and the
				// interpreter (2).
				if !slices.Equal(got.Pids, []int{1, 2}) || len(got.SecretSeen) > 0 ||
					!slices.Equal(got.Host, []string{"FileNotFoundError", "FileNotFoundError"}) {
					t.Errorf("inside: %+v", got)
				}
			},
		},
		{
			Name: "the host environment",
			Code: `import json, os
print(json.dumps({"secret": os.environ.get(` + q(HostileSecret) + `), "values": ` + q(env.Secret) + ` in repr(dict(os.environ)),
    "keys": sorted(k for k in os.environ if k not in ("HOME", "PATH", "TMPDIR", "PWD", "LANG", "LC_CTYPE", "PYTHONPATH", "PYTHONUNBUFFERED", "DSPEX_PLUGIN_MAGIC_COOKIE") and not k.startswith("PLUGIN_"))}))`,
			Stdout: `{"secret": null, "values": false, "keys": []}` + "\n",
		},
		{
			Name: "write outside scratch",
			Code: `import json
out = {}
for p in ["/x", "/usr/x", "/etc/x", "/proc/x", "/dev/x", ` + q(filepath.Join(env.Plugin, "hostile-was-here")) + `, ` +
				q(filepath.Join(env.Repo, "hostile-was-here")) + `, "/scratch/ok", "/tmp/ok"]:
    try:
        with open(p, "w") as f:
            f.write("x")
        out[p] = "written"
    except OSError as e:
        out[p] = "refused"
print(json.dumps(sorted(p for p, v in out.items() if v == "written")))`,
			Stdout: writableInside(filepath.Join(env.Repo, "hostile-was-here")),
		},
		{
			// pids.max refuses a fork at the cap, and the sandbox is
			// killed for it at once.
			Name: "fork bomb",
			Code: `import os
while True:
    try:
        os.fork()
    except OSError:
        pass`,
			ErrType: "ProcessLimitExceeded", KilledBy: "processes", Exit: 137, Discard: true, Quick: true,
		},
		{
			// Pages written 16 MiB at a time: the sandbox's OOM kill, long
			// before RLIMIT_AS would refuse an allocation.
			Name: "allocate past the memory limit",
			Code: `chunks = []
while True:
    chunks.append(b"x" * (16 << 20))`,
			ErrType: "MemoryLimitExceeded", KilledBy: "memory", Exit: 137, Discard: true, Quick: true,
		},
		{
			Name:    "one allocation far past the memory limit",
			Code:    `b = bytearray(64 << 30)`,
			ErrType: "MemoryError", KilledBy: "memory", Exit: 1, Discard: true, Quick: true,
		},
		{
			Name:    "infinite loop",
			Code:    "while True:\n    pass",
			ErrType: "ExecutionTimeout", KilledBy: "timeout", Exit: 124, Discard: true,
		},
		{
			// A regular expression that backtracks for ever holds the GIL
			// in C: the plugin cannot interrupt it or answer, and the host
			// kills it after the timeout and a grace period.
			Name:    "infinite loop in C holding the GIL",
			Code:    `import re; re.match(r"(a+)+$", "a" * 64 + "b")`,
			ErrType: "ExecutionTimeout", KilledBy: "timeout", Exit: 124, Discard: true,
		},
		{
			Name: "print gigabytes",
			Code: `import sys
line = "x" * (1 << 20)
while True:
    sys.stdout.write(line)`,
			ErrType: "OutputLimitExceeded", KilledBy: "output", Exit: 1, Discard: true, Quick: true,
		},
		{
			Name: "print gigabytes to the file descriptor",
			Code: `import os
line = b"x" * (1 << 20)
while True:
    os.write(1, line)`,
			ErrType: "OutputLimitExceeded", KilledBy: "output", Exit: 1, Discard: true, Quick: true,
		},
		{
			// RLIMIT_FSIZE; CPython ignores SIGXFSZ, so the write fails.
			Name: "fill the disk with one file",
			Code: `with open("/scratch/big", "wb") as f:
    while True:
        f.write(b"x" * (1 << 20))
        f.flush()`,
			ErrType: "OSError", ErrText: "File too large", KilledBy: "file-size", Exit: 1, Discard: true, Quick: true,
		},
		{
			// The size of the tmpfs /tmp.
			Name: "fill the disk with many files",
			Code: `n = 0
while True:
    with open("/tmp/f%d" % n, "wb") as f:
        f.write(b"x" * (8 << 20))
    n += 1`,
			ErrType: "OSError", ErrText: "No space left on device", KilledBy: "disk", Exit: 1, Discard: true, Quick: true,
		},
		{
			// The parent is the sandbox's init (pid 1), which the kernel
			// shields from signals sent inside its namespace; host pids do
			// not exist there.
			Name: "signal the parent and host processes",
			Code: `import json, os, signal
out = []
for pid in [os.getppid(), 1, ` + strconv.Itoa(env.TestPid) + `, ` + strconv.Itoa(env.VictimPid) + `]:
    for sig in [signal.SIGTERM, signal.SIGKILL]:
        try:
            os.kill(pid, sig)
            out.append("sent")
        except OSError as e:
            out.append(type(e).__name__)
print(json.dumps(out))`,
			Stdout: `["sent", "sent", "sent", "sent", "ProcessLookupError", "ProcessLookupError", "ProcessLookupError", "ProcessLookupError"]` + "\n",
		},
		{
			// kill(-1) reaches every process the code may signal but init
			// and itself: in the sandbox, none.
			Name:    "kill every process in sight",
			Code:    `import os, signal; os.kill(-1, signal.SIGKILL)`,
			ErrType: "ProcessLookupError", Exit: 1,
		},
		{
			Name:    "kill itself",
			Code:    `import os, signal; os.kill(os.getpid(), signal.SIGKILL)`,
			ErrType: "InterpreterCrash", ErrText: "killed by SIGKILL", KilledBy: "crash", Exit: 137, Discard: true, Quick: true,
		},
		{
			// The plugin's gRPC socket goes with them: the host sees the
			// execution break off (after the bridge's wait of up to 2 s to
			// see whether the process exited), and kills the process.
			Name:    "close the interpreter's file descriptors",
			Code:    "import os\nos.closerange(3, 65536)",
			ErrType: "InterpreterCrash", ErrText: "stopped answering properly", KilledBy: "crash", Exit: 1, Discard: true,
		},
		{
			Name:    "os._exit",
			Code:    `import os; os._exit(7)`,
			ErrType: "InterpreterCrash", ErrText: "exit code 7", KilledBy: "crash", Exit: 7, Discard: true, Quick: true,
		},
		{
			Name:    "segfault through ctypes",
			Code:    `import ctypes; ctypes.string_at(0)`,
			ErrType: "InterpreterCrash", ErrText: "killed by SIGSEGV", KilledBy: "crash", Exit: 139, Discard: true, Quick: true,
		},
		{
			// At the default recursion limit: an ordinary exception.
			Name:    "deep recursion",
			Code:    "def f(n):\n    return f(n + 1)\nf(0)",
			ErrType: "RecursionError", Exit: 1,
		},
		{
			// With the limit raised, the frames fill the memory.
			Name:    "deep recursion past a raised recursion limit",
			Code:    "import sys\nsys.setrecursionlimit(10**9)\ndef f(n):\n    return f(n + 1)\nf(0)",
			ErrType: "MemoryLimitExceeded", KilledBy: "memory", Exit: 137, Discard: true, Quick: true,
		},
		{
			// The limit the code sets is its own: the next execution has
			// the default again.
			Name: "raise the recursion limit",
			Code: "import sys\nsys.setrecursionlimit(10**6)\nsys.getrecursionlimit()",
			Next: "import sys\nsys.getrecursionlimit()", NextValue: "1000",
		},
		{
			Name: "symlinks out of scratch",
			Code: `import json, os
out = {}
for name, target in [("shadow", "/etc/shadow"), ("ssh", "/root/.ssh/id_rsa"), ("init_root", "/proc/1/root/etc/shadow"),
        ("repo", ` + q(filepath.Join(env.Repo, "go.mod")) + `), ("up", "../../etc/shadow")]:
    os.symlink(target, "/scratch/" + name)
    try:
        open("/scratch/" + name).read()
        out[name] = "read"
    except OSError as e:
        out[name] = type(e).__name__
print(json.dumps(out))`,
			Stdout: `{"shadow": "FileNotFoundError", "ssh": "FileNotFoundError", "init_root": "FileNotFoundError", "repo": "FileNotFoundError", "up": "FileNotFoundError"}` + "\n",
		},
		{
			Name: "mount, ptrace, unshare, chroot",
			Code: `import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    return "ok" if getattr(libc, name)(*args) == 0 else os.strerror(ctypes.get_errno())
print(json.dumps({"mount": call("mount", b"none", b"/tmp", b"tmpfs", 0, None),
    "ptrace": call("ptrace", 16, 1, None, None), "unshare": call("unshare", 0x10000000),
    "chroot": call("chroot", b"/tmp")}))`,
			Stdout: `{"mount": "Operation not permitted", "ptrace": "Operation not permitted", "unshare": "Operation not permitted", "chroot": "Operation not permitted"}` + "\n",
		},
		{
			Name: "run as root",
			Code: `import json, os
out = {"uid": [os.getuid(), os.geteuid(), os.getgid()], "caps": [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]}
for name, f in [("setuid", lambda: os.setuid(0)), ("setgid", lambda: os.setgid(0))]:
    try:
        f()
        out[name] = "ok"
    except OSError as e:
        out[name] = os.strerror(e.errno)
print(json.dumps(out))`,
			// uid 0 has no mapping in the sandbox's user namespace.
			Stdout: `{"uid": [65534, 65534, 65534], "caps": "0000000000000000", "setuid": "Invalid argument", "setgid": "Invalid argument"}` + "\n",
		},
		{
			Name:    "call a tool with wrong arguments",
			Code:    `price(colour="red")`,
			ErrType: "TypeError", ErrText: "price() got an unexpected keyword argument 'colour' (its arguments: item)", Exit: 1,
			Tools: true, Next: `price("apple")`, NextValue: "3",
		},
		{
			Name:    "call a tool with arguments of the wrong type",
			Code:    `price(item=["apple"])`,
			ErrType: "ToolError", ErrText: "item", Exit: 1, Tools: true,
		},
	}
}

// writableInside is the write-outside-scratch case's expected output: the
// paths the code may write inside the sandbox. /scratch and /tmp are the
// sandbox's own tmpfs; so is a repository path under /tmp (a clone under
// /tmp, say), which the sandbox does not bind (it binds only the
// interpreter's runtime and the plugin's code, read-only): there the code
// writes to the sandbox's private /tmp, never the host's, which HostFine
// checks.
func writableInside(repoPaths ...string) string {
	out := []string{"/scratch/ok", "/tmp/ok"}
	for _, p := range repoPaths {
		if strings.HasPrefix(p, "/tmp/") {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	b, _ := json.Marshal(out)
	return strings.ReplaceAll(string(b), `","`, `", "`) + "\n"
}
