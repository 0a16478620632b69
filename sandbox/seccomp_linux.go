//go:build linux

package sandbox

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// deniedSyscalls fail with EPERM inside the sandbox: nothing an
// interpreter needs, and each a way to attack the kernel or the
// namespaces. Names unknown to the running architecture are skipped.
var deniedSyscalls = []string{
	// Debugging and inspecting other processes.
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	// Mounts and namespaces.
	"mount", "umount2", "unshare", "setns", "pivot_root", "chroot",
	"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
	// Kernel keyrings.
	"keyctl", "add_key", "request_key",
	// Kernel programming and tracing.
	"bpf", "perf_event_open", "userfaultfd",
	// Replacing or extending the kernel.
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	// The machine itself.
	"reboot", "swapon", "swapoff", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"sethostname", "setdomainname", "iopl", "ioperm", "acct", "quotactl",
	// Execution domains (READ_IMPLIES_EXEC and friends) and handle-based
	// opens, which bypass path lookups.
	"personality", "open_by_handle_at", "name_to_handle_at",
	// Ancient or obscure interfaces with a history of kernel bugs.
	"uselib", "_sysctl", "lookup_dcookie", "vhangup", "nfsservctl",
}

// seccompFilter returns the filter compiled to the kernel's sock_filter
// array, the format bwrap's --seccomp reads.
func seccompFilter() ([]byte, error) {
	names := make([]string, 0, len(deniedSyscalls))
	for _, n := range deniedSyscalls {
		if _, ok := syscallKnown(n); ok {
			names = append(names, n)
		}
	}
	policy := seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls:      []seccomp.SyscallGroup{{Action: seccomp.ActionErrno, Names: names}},
	}
	insns, err := policy.Assemble()
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp filter: %w", err)
	}
	native, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	// The library lets system calls of a foreign architecture (i386's
	// int 0x80 on x86-64) through to its default action, here "allow":
	// kill the process on any architecture but the native one first.
	guard := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(native.ID), SkipTrue: 1},
		bpf.RetConstant{Val: uint32(seccomp.ActionKillProcess)},
	}
	raw, err := bpf.Assemble(append(guard, insns...))
	if err != nil {
		return nil, fmt.Errorf("assemble seccomp filter: %w", err)
	}
	var buf bytes.Buffer
	for _, in := range raw {
		// struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }
		_ = binary.Write(&buf, binary.NativeEndian, unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K})
	}
	return buf.Bytes(), nil
}

// syscallKnown reports whether the policy assembler knows name on this
// architecture (it rejects a policy naming an unknown one).
func syscallKnown(name string) (string, bool) {
	p := seccomp.Policy{DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{{Action: seccomp.ActionErrno, Names: []string{name}}}}
	_, err := p.Assemble()
	return name, err == nil
}

// seccompFile returns a file holding the filter, positioned at its start,
// for bwrap to read from an inherited descriptor.
func seccompFile() (*os.File, error) {
	prog, err := seccompFilter()
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("dspex-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "dspex-seccomp")
	if _, err := f.Write(prog); err != nil {
		f.Close()
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	return f, nil
}
