package sandbox

import (
	"errors"
	"time"
)

// ErrUnavailable is returned (wrapped, with the reason) when no working
// sandbox can be created: bwrap is missing or cannot create namespaces,
// the interpreter cannot be found, and so on.
var ErrUnavailable = errors.New("sandbox: unavailable")

// Config says what a sandboxed command may see and use. The zero value
// works: the system's python3, no extra paths, a minimal environment, and
// the default limits.
type Config struct {
	// ReadOnly are host paths bound read-only at the same path inside (the
	// plugin's code, a dataset). Each must exist.
	ReadOnly []string
	// ReadWrite are host paths bound writable at the same path inside (the
	// directory of a plugin's unix socket). Each must exist. Default none.
	ReadWrite []string
	// Env is the command's whole environment; nothing of the host's is
	// passed. Default (nil): PATH (the interpreter's directory, /usr/bin,
	// /bin), HOME=/scratch, TMPDIR=/tmp, LANG=C.UTF-8. A non-nil Env is
	// used as given, with PATH, HOME and TMPDIR added when missing.
	Env map[string]string
	// Limits caps resources; zero fields take their defaults.
	Limits Limits
	// Timeout is the wall-clock limit, after which the whole sandbox is
	// killed (KilledBy "timeout"). Default 30s; negative means none (for a
	// long-running plugin, whose owner ends it with Kill or Close).
	Timeout time.Duration
	// OutputLimit caps each of stdout and stderr kept by Run; the command
	// is killed when it writes more (KilledBy "output"). Default 1 MiB.
	// Command leaves the pipes to the caller, who must bound its reads.
	OutputLimit int
	// Python is the interpreter whose runtime is made visible: a path, or
	// a name looked up in $PATH. Default "python3". A name or symlink is
	// resolved by asking the interpreter (sys.executable, sys.prefix,
	// sys.path), so a virtualenv's python brings its venv and base
	// runtime. argv[0] "python" or "python3" runs it.
	Python string
	// Runtime, when set, is Python already resolved (ResolvePython), and
	// Python is ignored. Default nil: Python is resolved on each Command.
	Runtime *Runtime
	// Unsafe runs the command with NO isolation at all (no namespaces,
	// no seccomp, no cgroup), only the timeout, rlimits, output caps and
	// Env; its working directory and HOME are a private temporary
	// directory, removed after.
	// It is for machines where no sandbox can be made and the user
	// explicitly opted out; the caller must log that it did.
	Unsafe bool
}

// Runtime is a Python interpreter and what it needs to see; see
// ResolvePython.
type Runtime struct {
	// Executable is the interpreter's path as Python reports it
	// (sys.executable: a virtualenv's own bin/python, not its target).
	Executable string `json:"executable"`
	// Prefixes are sys.prefix, sys.base_prefix and the exec prefixes,
	// bound read-only unless they are shared system prefixes (/usr, ...).
	Prefixes []string `json:"prefixes"`
	// Path is sys.path as an isolated interpreter (-I) sees it; each
	// existing entry is bound read-only.
	Path []string `json:"path"`
}

// Limits are the resource limits of one sandbox. Zero fields take the
// defaults below; a negative field means no limit.
type Limits struct {
	// CPU is the CPU time (RLIMIT_CPU, whole seconds, rounded up); past it
	// the command gets SIGXCPU, a second later SIGKILL (KilledBy "cpu").
	// Default 10s.
	CPU time.Duration
	// Memory caps the sandbox's memory through its cgroup (memory.max,
	// or memory.limit_in_bytes and memsw), tmpfs pages included; the
	// kernel's OOM killer ends the command, and the host then kills what
	// is left of the sandbox (KilledBy "memory"). Default 512 MiB.
	Memory int64
	// AddressSpace is RLIMIT_AS per process, the memory bound left when
	// no memory cgroup is available; allocations past it fail
	// (Python's MemoryError). Default 4×Memory: virtual memory runs well
	// past resident memory (thread stacks, malloc arenas).
	AddressSpace int64
	// Processes caps the sandbox's processes and threads through its
	// cgroup (pids.max) and RLIMIT_NPROC. Default 64. With a cgroup, a
	// fork or thread refused at the cap ends the whole sandbox at once
	// (KilledBy "processes"): a fork bomb does not spin until the timeout.
	Processes int
	// FileSize is RLIMIT_FSIZE, the largest file the command may write.
	// Default 16 MiB.
	FileSize int64
	// OpenFiles is RLIMIT_NOFILE. Default 256.
	OpenFiles int
	// TmpSize caps each of the tmpfs /tmp and /scratch. Default 64 MiB.
	TmpSize int64
}

// Defaults of Config and Limits.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultOutputLimit = 1 << 20
	DefaultCPU         = 10 * time.Second
	DefaultMemory      = 512 << 20
	DefaultProcesses   = 64
	DefaultFileSize    = 16 << 20
	DefaultOpenFiles   = 256
	DefaultTmpSize     = 64 << 20
	DefaultPython      = "python3"
)

// Scratch is the private writable directory inside every sandbox, and
// the command's working directory.
const Scratch = "/scratch"

// UID and GID are the user and group a sandboxed command runs as, inside.
const (
	UID = 65534
	GID = 65534
)

// withDefaults returns l with each zero field set to its default.
func (l Limits) withDefaults() Limits {
	if l.CPU == 0 {
		l.CPU = DefaultCPU
	}
	if l.Memory == 0 {
		l.Memory = DefaultMemory
	}
	if l.AddressSpace == 0 {
		l.AddressSpace = 4 * l.Memory
		if l.Memory < 0 {
			l.AddressSpace = -1
		}
	}
	if l.Processes == 0 {
		l.Processes = DefaultProcesses
	}
	if l.FileSize == 0 {
		l.FileSize = DefaultFileSize
	}
	if l.OpenFiles == 0 {
		l.OpenFiles = DefaultOpenFiles
	}
	if l.TmpSize == 0 {
		l.TmpSize = DefaultTmpSize
	}
	return l
}

func (c Config) withDefaults() Config {
	c.Limits = c.Limits.withDefaults()
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.OutputLimit <= 0 {
		c.OutputLimit = DefaultOutputLimit
	}
	if c.Python == "" {
		c.Python = DefaultPython
	}
	return c
}

// Result is how a command run by Run ended.
type Result struct {
	// Stdout and Stderr are the command's output, each cut at
	// Config.OutputLimit.
	Stdout, Stderr []byte
	// ExitCode is the command's exit status; -1 when a signal ended it.
	ExitCode int
	// Duration is the wall-clock time from start to exit.
	Duration time.Duration
	// KilledBy names the limit that ended the command: "timeout",
	// "memory", "processes", "cpu", "output", "file-size", "signal:N"
	// (another signal), or "" when it exited by itself.
	KilledBy string
}

// Killed-by values of Result.KilledBy and Cmd.KilledBy.
const (
	KilledByTimeout   = "timeout"
	KilledByMemory    = "memory"
	KilledByProcesses = "processes"
	KilledByCPU       = "cpu"
	KilledByOutput    = "output"
	KilledByFileSize  = "file-size"
)

// IsLimit reports whether killedBy (a Result.KilledBy or Cmd.KilledBy)
// names one of the sandbox's limits, as opposed to "" or "signal:N".
func IsLimit(killedBy string) bool {
	switch killedBy {
	case KilledByTimeout, KilledByMemory, KilledByProcesses, KilledByCPU, KilledByOutput, KilledByFileSize:
		return true
	}
	return false
}

// helperName is argv[0] of the re-executed limits helper (see the package
// doc), and helperFailedCode its exit status when it cannot set the limits
// up (125, as env(1) and docker use when they fail to run a command).
const (
	helperName       = "dspex-sandbox-init"
	helperFailedCode = 125
)

// Protections say which layers guard one Cmd.
type Protections struct {
	// Namespaces are the namespaces bwrap unshares ("user", "pid", ...).
	Namespaces []string `json:"namespaces"`
	// Seccomp is true when the seccomp filter is installed.
	Seccomp bool `json:"seccomp"`
	// Cgroup is "v1" or "v2" when the command runs in its own cgroup
	// with pids and memory caps, "" when it does not.
	Cgroup string `json:"cgroup,omitempty"`
	// HostUID is the uid the sandboxed processes have on the host.
	HostUID int `json:"host_uid"`
	// Rlimits is true when the rlimits are set.
	Rlimits bool `json:"rlimits"`
	// Unsafe is true when the command runs with no isolation.
	Unsafe bool `json:"unsafe,omitempty"`
	// Notes say what is missing and why.
	Notes []string `json:"notes,omitempty"`
}
