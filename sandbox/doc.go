// Package sandbox runs untrusted commands — in DSPEx, Python written by an
// LM and the interpreter plugin that executes it — isolated from the host.
//
// A sandbox is a bubblewrap (bwrap) container built fresh for each command:
//
//   - new user, pid, network, ipc, uts and cgroup namespaces, and no further
//     user namespaces inside (--disable-userns);
//   - uid and gid 65534 inside, never root, all capabilities dropped;
//   - a read-only view of only the Python runtime (its prefix, its sys.path
//     directories, the shared libraries in /usr/lib and /lib*) and the paths
//     the caller lists; no /home, /root or /etc beyond ld.so.cache;
//   - size-limited tmpfs /tmp and /scratch (the working directory), the only
//     writable places besides the caller's Config.ReadWrite paths;
//   - a cleared environment holding only Config.Env;
//   - a seccomp filter denying system calls an interpreter has no use for
//     (ptrace, mount, unshare, setns, keyctl, bpf, kexec, module loading…);
//   - a cgroup of its own (v1 or v2) capping processes and memory, which
//     binds even when the caller is root, where RLIMIT_NPROC does not;
//   - rlimits on CPU seconds, address space, processes, file size and open
//     files; a wall-clock timeout; capped output (Run).
//
// Check reports which of these work on this machine. Command and Run
// refuse with ErrUnavailable when no sandbox can be made; Config.Unsafe
// opts out and runs the command with no isolation at all (the caller must
// log that).
//
// Rlimits and the cgroup are applied by a helper: the running executable
// re-executed under the name "dspex-sandbox-init", which joins the
// cgroup, sets the rlimits and execs bwrap, so that no sandboxed process
// ever runs outside its limits. The helper runs from this package's init
// function, which does nothing in any other process; a program that
// imports the package gets it for free.
//
// docs/sandbox.md says what each layer gives and what it does not.
package sandbox
