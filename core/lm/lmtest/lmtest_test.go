package lmtest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
)

// A program tested against the simulator: NewServer starts it for the
// test, options configure it, and the test's cleanup closes it.
func TestNewServer(t *testing.T) {
	var sim *lmtest.Server
	t.Run("program", func(t *testing.T) {
		sim = lmtest.NewServer(t,
			lmtest.WithSeed(7),
			lmtest.WithAPIKey("sk-sim"),
			lmtest.WithScript(&lmtest.Script{Rules: []lmtest.Rule{
				{Match: "Italy", Fields: map[string]any{"capital": "Rome"}},
			}}),
		)
		model, err := openai.New(openai.Config{Model: lmtest.DefaultModel, BaseURL: sim.URL(), APIKey: "sk-sim"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := capitalOf(context.Background(), model, "Italy")
		if err != nil || got != "Rome" {
			t.Fatalf("capitalOf(Italy) = %q, %v; want Rome", got, err)
		}
		if st := sim.Stats(); st.Requests != 1 || st.ScriptHits != 1 {
			t.Errorf("stats = %+v, want one scripted request", st)
		}
		if reqs := sim.Requests(); len(reqs) != 1 {
			t.Errorf("recorded %d requests, want 1", len(reqs))
		}

		wrongKey, err := openai.New(openai.Config{Model: lmtest.DefaultModel, BaseURL: sim.URL(), APIKey: "sk-other"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := capitalOf(context.Background(), wrongKey, "Italy"); !errors.Is(err, lm.ErrAuth) {
			t.Errorf("wrong API key: %v, want ErrAuth", err)
		}
	})
	if res, err := http.Get(strings.TrimSuffix(sim.URL(), "/v1") + "/healthz"); err == nil {
		res.Body.Close()
		t.Errorf("the server still answers after the subtest (%s), want it closed", res.Status)
	}
}

// Options apply in order over WithConfig's Config.
func TestNewServerOptions(t *testing.T) {
	fault, err := lmtest.ParseFault("500")
	if err != nil {
		t.Fatal(err)
	}
	sim := lmtest.NewServer(t, lmtest.WithConfig(lmtest.Config{Models: []string{"extra"}}), lmtest.WithFaults(fault))
	model, err := openai.New(openai.Config{Model: "extra", BaseURL: sim.URL(), APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.Complete(context.Background(), &lm.Request{Messages: []lm.Message{{Role: lm.RoleUser, Content: "hi"}}}); !errors.Is(err, lm.ErrServer) {
		t.Errorf("first request with fault 500: %v, want ErrServer", err)
	}
	if st := sim.Stats(); st.Faults[lmtest.FaultServerError] != 1 {
		t.Errorf("faults = %v, want one injected", st.Faults)
	}
}
