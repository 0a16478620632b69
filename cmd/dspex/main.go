// Command dspex runs, evaluates, optimizes and serves DSPEx programs.
// See docs/cli.md.
package main

import (
	"os"

	"github.com/dspex/dspex/cmd/dspex/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
