package serve_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dspex/dspex/cmd/dspex/internal/serve"
	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// A client that asks for a large answer and never reads it holds neither a
// prediction slot while the answer is written, nor the server past the
// request's timeout and write grace: a shutdown then drains cleanly.
func TestClientThatNeverReadsIsCutOff(t *testing.T) {
	big := strings.Repeat("x", 16<<20) // far more than the socket buffers hold
	answered := make(chan struct{}, 1)
	prog := funcProgram(func(context.Context, module.Inputs) (*example.Prediction, error) {
		answered <- struct{}{}
		return example.NewPrediction(map[string]any{"answer": big}), nil
	})
	const timeout = 300 * time.Millisecond
	r := startServer(t, serve.Config{Program: prog, Signature: signature.MustParse("question -> answer"),
		MaxConcurrent: 1, RequestTimeout: timeout}, nil, nil)

	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"question": "q"}`
	if _, err := fmt.Fprintf(conn, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
		t.Fatal(err)
	}
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("the program was not called within 10s")
	}
	// The answer is being written to a client that does not read: the
	// slot is free for the next prediction.
	waitFor(t, 5*time.Second, "the slot to be released while the answer is written", func() bool {
		return r.srv.Stats().Running == 0
	})

	start := time.Now()
	if err := r.stop(); err != nil {
		t.Fatalf("shutdown with a client that never reads: %v", err)
	}
	// The write deadline is at most timeout + 2s after the request came;
	// the default drain timeout (timeout + 5s) is not reached.
	if took := time.Since(start); took > timeout+serve.DefaultDrainGrace {
		t.Errorf("shutdown took %s", took)
	}
}
