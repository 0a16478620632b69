package bridge

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	pluginv1 "github.com/dspex/dspex/bridge/proto/dspex/plugin/v1"
	"github.com/dspex/dspex/core/lm/lmtest"
)

// The built-in fine-tuning plugin through the default registry, against
// the simulated fine-tuning API: a job started from Go is watched to
// success, the same idempotency key starts no second job, and a refused
// file is InvalidArgument.
func TestPythonFineTuneIntegration(t *testing.T) {
	t.Parallel()
	python := pythonForTests(t)
	sim := lmtest.NewServer(t, lmtest.WithFineTuneStep(50*time.Millisecond))
	cfg := DefaultConfig()
	cfg.Python = python
	cfg.Supervisor = pythonConfig()
	h, err := NewHost(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Shutdown(ctxTimeout(t, 20*time.Second)) })
	p, err := h.ForCapability("finetune", "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != FineTunePlugin {
		t.Fatalf("capability finetune is served by %q", p.Name())
	}
	info, err := p.Info(ctxTimeout(t, 30*time.Second))
	if err != nil || strings.Join(info.GetCapabilities(), ",") != "finetune" {
		t.Fatalf("info: %v, %v", info, err)
	}
	ft := pluginv1.NewFineTunerClient(p.Conn())
	opts := map[string]string{"base_url": sim.URL(), "poll_interval": "50ms"}
	data := []byte(`{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}` + "\n")
	req := &pluginv1.StartJobRequest{BaseModel: "dspex-sim", TrainingJsonl: data, Backend: "openai", BackendOptions: opts, IdempotencyKey: "go-1"}
	status, err := ft.StartJob(ctxTimeout(t, 60*time.Second), req)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	again, err := ft.StartJob(ctxTimeout(t, 60*time.Second), req)
	if err != nil || again.GetJobId() != status.GetJobId() {
		t.Fatalf("start again: %v, %v; want job %s", again, err, status.GetJobId())
	}
	stream, err := ft.WatchJob(ctxTimeout(t, 60*time.Second), &pluginv1.WatchJobRequest{JobId: status.GetJobId(), Backend: "openai", BackendOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	var last *pluginv1.JobEvent
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		last = ev
	}
	if last.GetState() != "succeeded" || last.GetFineTunedModel() != "ft:dspex-sim:dspex:"+status.GetJobId() {
		t.Errorf("last event %v", last)
	}
	if st := sim.Stats(); st.FineTuneJobs != 1 || st.Files != 1 {
		t.Errorf("simulator made %d jobs from %d files; want 1 of each", st.FineTuneJobs, st.Files)
	}
	_, err = ft.StartJob(ctxTimeout(t, 60*time.Second), &pluginv1.StartJobRequest{BaseModel: "dspex-sim", TrainingJsonl: []byte("nope\n"), BackendOptions: opts})
	if err == nil || !strings.Contains(err.Error(), "InvalidArgument") || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad file: %v", err)
	}
}
