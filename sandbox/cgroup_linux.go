//go:build linux

package sandbox

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupRoot is where cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupPrefix starts the name of every sandbox's cgroup:
// dspex-sandbox-<creator pid>-<random>.
const cgroupPrefix = "dspex-sandbox-"

// cgroup is one sandbox's cgroup: on v2 one directory, on v1 one per
// controller (pids, memory).
type cgroup struct {
	version int               // 1 or 2
	dirs    map[string]string // controller ("pids", "memory"; on v2 "" too) → directory
}

// cgroupVersion reports which cgroup hierarchy the machine uses for the
// pids and memory controllers: 2 (unified), 1 (legacy, both controllers
// mounted), or 0 with the reason.
func cgroupVersion() (int, string) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &st); err != nil {
		return 0, fmt.Sprintf("no cgroup file system at %s: %v", cgroupRoot, err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return 2, ""
	}
	for _, c := range []string{"pids", "memory"} {
		if err := unix.Statfs(filepath.Join(cgroupRoot, c), &st); err != nil || st.Type != unix.CGROUP_SUPER_MAGIC {
			return 0, fmt.Sprintf("cgroup v1 controller %s is not mounted at %s", c, filepath.Join(cgroupRoot, c))
		}
	}
	return 1, ""
}

// ownCgroups maps each controller of /proc/self/cgroup to this process's
// cgroup path ("" is the v2 hierarchy).
func ownCgroups() map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

// newCgroup creates a cgroup for one sandbox with lim's process and
// memory caps. It is placed under this process's own cgroup where that
// is visible, so the host's accounting of dspex still covers it.
func newCgroup(lim Limits) (*cgroup, error) {
	version, why := cgroupVersion()
	if version == 0 {
		return nil, errors.New(why)
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	// The creator's pid in the name tells whose a leftover cgroup was.
	name := cgroupPrefix + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(id[:])
	own := ownCgroups()
	cg := &cgroup{version: version, dirs: map[string]string{}}
	if version == 2 {
		parent := filepath.Join(cgroupRoot, own[""])
		if err := enableV2(parent); err != nil {
			return nil, err
		}
		sweepStale(parent)
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
		cg.dirs["pids"], cg.dirs["memory"] = dir, dir
		if err := cg.limit(lim); err != nil {
			cg.remove()
			return nil, err
		}
		return cg, nil
	}
	for _, c := range []string{"pids", "memory"} {
		parent := filepath.Join(cgroupRoot, c, own[c])
		if _, err := os.Stat(parent); err != nil || own[c] == "" {
			parent = filepath.Join(cgroupRoot, c)
		}
		sweepStale(parent)
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			cg.remove()
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
		cg.dirs[c] = dir
	}
	if err := cg.limit(lim); err != nil {
		cg.remove()
		return nil, err
	}
	return cg, nil
}

// sweepStale removes the empty cgroups that sandboxes of dead processes
// left under parent (a dspex killed before it could clean up; its
// sandboxes died with it). A cgroup with processes in it cannot be
// removed, so this never touches a live sandbox.
func sweepStale(parent string) {
	matches, _ := filepath.Glob(filepath.Join(parent, cgroupPrefix+"*"))
	for _, dir := range matches {
		rest := strings.TrimPrefix(filepath.Base(dir), cgroupPrefix)
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.Remove(dir)
		}
	}
}

// enableV2 makes the pids and memory controllers available to children of
// parent. It fails where parent holds processes itself (v2 allows
// controllers only on cgroups without processes, the root excepted).
func enableV2(parent string) error {
	b, err := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("cgroup v2: %w", err)
	}
	have := strings.Fields(string(b))
	for _, c := range []string{"pids", "memory"} {
		if contains(have, c) {
			continue
		}
		if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+"+c), 0); err != nil {
			return fmt.Errorf("cgroup v2: enable %s in %s: %w", c, parent, err)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (cg *cgroup) write(controller, file, value string) error {
	path := filepath.Join(cg.dirs[controller], file)
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		return fmt.Errorf("cgroup: write %s to %s: %w", value, path, err)
	}
	return nil
}

func (cg *cgroup) limit(lim Limits) error {
	if lim.Processes > 0 {
		if err := cg.write("pids", "pids.max", strconv.Itoa(lim.Processes)); err != nil {
			return err
		}
	}
	if lim.Memory > 0 {
		mem := strconv.FormatInt(lim.Memory, 10)
		if cg.version == 2 {
			if err := cg.write("memory", "memory.max", mem); err != nil {
				return err
			}
			// No swap: past memory.max the OOM killer acts at once.
			if _, err := os.Stat(filepath.Join(cg.dirs["memory"], "memory.swap.max")); err == nil {
				if err := cg.write("memory", "memory.swap.max", "0"); err != nil {
					return err
				}
			}
			return nil
		}
		if err := cg.write("memory", "memory.limit_in_bytes", mem); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(cg.dirs["memory"], "memory.memsw.limit_in_bytes")); err == nil {
			if err := cg.write("memory", "memory.memsw.limit_in_bytes", mem); err != nil {
				return err
			}
		}
	}
	return nil
}

// procsFiles are the cgroup.procs files a process writes to join.
func (cg *cgroup) procsFiles() []string {
	if cg.version == 2 {
		return []string{filepath.Join(cg.dirs["pids"], "cgroup.procs")}
	}
	return []string{filepath.Join(cg.dirs["pids"], "cgroup.procs"), filepath.Join(cg.dirs["memory"], "cgroup.procs")}
}

// pids lists the processes in the cgroup.
func (cg *cgroup) pids() []int {
	b, err := os.ReadFile(filepath.Join(cg.dirs["pids"], "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// kill SIGKILLs every process in the cgroup until none is left or a
// second passes. A fork bomb cannot outrun it: pids.max stops new forks.
func (cg *cgroup) kill() {
	if cg.version == 2 {
		// cgroup.kill (Linux 5.14) kills the whole subtree atomically.
		_ = os.WriteFile(filepath.Join(cg.dirs["pids"], "cgroup.kill"), []byte("1"), 0)
	}
	deadline := time.Now().Add(time.Second)
	for {
		pids := cg.pids()
		if len(pids) == 0 || time.Now().After(deadline) {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// watchInterval is how often a running sandbox's cgroup is checked for a
// limit that was hit (see watch).
const watchInterval = 20 * time.Millisecond

// limitHit names the cgroup limit the sandbox ran into: "processes" when
// a fork or thread was refused at pids.max, "memory" when the OOM killer
// acted; "" when neither happened.
func (cg *cgroup) limitHit() string {
	if cg.oomKills() > 0 {
		return KilledByMemory
	}
	if eventCount(filepath.Join(cg.dirs["pids"], "pids.events"), "max") > 0 {
		return KilledByProcesses
	}
	return ""
}

// watch checks the cgroup every watchInterval until done closes, and
// calls hit once with the limit reached, if one is. A fork bomb or a
// process the OOM killer ended thus brings the whole sandbox down at
// once, named for its limit, instead of spinning at the cap (or running
// on without the process killed) until the wall-clock timeout.
func (cg *cgroup) watch(done <-chan struct{}, hit func(limit string)) {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if limit := cg.limitHit(); limit != "" {
				hit(limit)
				return
			}
		}
	}
}

// oomKills is how many processes the kernel's OOM killer ended in the
// cgroup (v1's memory.oom_control has the count since Linux 4.13).
func (cg *cgroup) oomKills() int {
	name := "memory.oom_control"
	if cg.version == 2 {
		name = "memory.events"
	}
	return eventCount(filepath.Join(cg.dirs["memory"], name), "oom_kill")
}

// oomKilled reports whether the kernel's OOM killer acted in the cgroup.
func (cg *cgroup) oomKilled() bool {
	if cg.oomKills() > 0 {
		return true
	}
	if cg.version == 2 {
		return false
	}
	b, err := os.ReadFile(filepath.Join(cg.dirs["memory"], "memory.failcnt"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && n > 0
}

// eventCount reads "key N" from a flat-keyed cgroup file.
func eventCount(path, key string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// remove kills what is left in the cgroup and removes its directories;
// the kernel refuses while exiting processes are still being reaped, so
// it retries for a while.
func (cg *cgroup) remove() {
	cg.kill()
	deadline := time.Now().Add(2 * time.Second)
	for c, dir := range cg.dirs {
		if c == "memory" && cg.version == 2 {
			continue // the same directory as pids
		}
		for {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
				break
			}
			cg.kill()
			time.Sleep(10 * time.Millisecond)
		}
	}
}
