//go:build linux

package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// helperName is argv[0] of the re-executed helper; helperEnv carries its
// instructions. Both must be present, so no ordinary run of a program can
// turn into the helper by accident.
const helperEnv = "DSPEX_SANDBOX_INIT"

// helperPlan is what the helper does before it execs the command.
type helperPlan struct {
	// Procs are cgroup.procs files to join, in order.
	Procs []string `json:"procs,omitempty"`
	// Rlimits are (resource, soft, hard) triples.
	Rlimits [][3]uint64 `json:"rlimits,omitempty"`
}

func init() {
	if filepath.Base(os.Args[0]) != helperName {
		return
	}
	spec, ok := os.LookupEnv(helperEnv)
	if !ok {
		return
	}
	// The helper never returns: it execs the command or exits 125 (as
	// env(1) and docker do when they fail to run the command).
	if err := runHelper(spec, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", helperName, err)
		os.Exit(helperFailedCode)
	}
}

// runHelper joins the cgroups, sets the rlimits, and execs argv with an
// empty environment (bwrap gets its payload's environment on its command
// line).
func runHelper(spec string, argv []string) error {
	var plan helperPlan
	if err := json.Unmarshal([]byte(spec), &plan); err != nil {
		return fmt.Errorf("bad %s: %w", helperEnv, err)
	}
	if len(argv) == 0 {
		return fmt.Errorf("no command")
	}
	for _, procs := range plan.Procs {
		// "0" is the writing process: joining before the exec puts every
		// process the command will ever start in the cgroup.
		if err := os.WriteFile(procs, []byte("0"), 0); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	for _, r := range plan.Rlimits {
		lim := unix.Rlimit{Cur: r[1], Max: r[2]}
		if err := unix.Setrlimit(int(r[0]), &lim); err != nil {
			return fmt.Errorf("setrlimit %d to %d/%d: %w", r[0], r[1], r[2], err)
		}
	}
	return syscall.Exec(argv[0], argv, []string{})
}
