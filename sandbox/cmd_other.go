//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

// Cmd is a command prepared to run in a sandbox; on this system none can
// be made, so Command always fails with ErrUnavailable.
type Cmd struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	python         string
}

// Command fails: the sandbox needs Linux namespaces.
func Command(ctx context.Context, cfg Config, argv ...string) (*Cmd, error) {
	return nil, fmt.Errorf("%w: the sandbox needs Linux (this is %s)", ErrUnavailable, runtime.GOOS)
}

var errNoSandbox = errors.New("sandbox: not supported on " + runtime.GOOS)

func (c *Cmd) Protections() Protections             { return Protections{} }
func (c *Cmd) StdinPipe() (io.WriteCloser, error)   { return nil, errNoSandbox }
func (c *Cmd) StdoutPipe() (io.ReadCloser, error)   { return nil, errNoSandbox }
func (c *Cmd) StderrPipe() (io.ReadCloser, error)   { return nil, errNoSandbox }
func (c *Cmd) Start() error                         { return errNoSandbox }
func (c *Cmd) Pid() int                             { return 0 }
func (c *Cmd) Wait() error                          { return errNoSandbox }
func (c *Cmd) KilledBy() string                     { return "" }
func (c *Cmd) ExitCode() int                        { return -1 }
func (c *Cmd) ProcessState() *os.ProcessState       { return nil }
func (c *Cmd) Kill()                                {}
func (c *Cmd) Close() error                         { return nil }
func (c *Cmd) kill(string)                          {}
func bwrapVersion(context.Context) (string, string) { return "", "" }

// ResolvePython fails: the sandbox needs Linux.
func ResolvePython(ctx context.Context, python string) (Runtime, error) {
	return Runtime{}, errNoSandbox
}
