package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/dspex/dspex/sandbox"
)

// Run one snippet of untrusted Python with a 5-second wall clock and the
// default limits; refuse when no sandbox can be made.
func ExampleRun() {
	ctx := context.Background()
	res, err := sandbox.Run(ctx, sandbox.Config{Timeout: 5 * time.Second}, nil, "python", "-c", "print(6*7)")
	if errors.Is(err, sandbox.ErrUnavailable) {
		log.Fatalf("refusing to run untrusted code: %v", err)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s(exit %d, killed by %q, %s)\n", res.Stdout, res.ExitCode, res.KilledBy, res.Duration)
}

// Say which protections a sandbox has on this machine.
func ExampleCheck() {
	rep := sandbox.Check(context.Background(), sandbox.Config{})
	if !rep.Available {
		fmt.Println("no sandbox:", rep.Reason)
		return
	}
	fmt.Printf("uid %d inside, cgroup %q, seccomp %v\n", rep.UID, rep.Protections.Cgroup, rep.Protections.Seccomp)
}
