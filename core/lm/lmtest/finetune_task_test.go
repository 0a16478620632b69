package lmtest_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dspex/dspex/core/adapter"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/signature"
)

// TestBundledTaskFineTuned fine-tunes on the bundled task's training split,
// formatted as DSPy's ChatAdapter writes BootstrapFinetune's data (the gold
// answers, as traces that pass the metric would hold), through the
// simulated files and jobs API, and asks the dev split zero-shot: the
// tuned model does better than the base model by the documented bonus.
// This measures the simulator's rule, not fine-tuning.
func TestBundledTaskFineTuned(t *testing.T) {
	d, err := lmtest.LoadDatasetFiles(capitalsFiles, lmtest.DatasetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var train, dev []lmtest.DatasetExample
	for _, ex := range d.Examples() {
		if strings.HasSuffix(ex.File, "train.jsonl") {
			train = append(train, ex)
		} else {
			dev = append(dev, ex)
		}
	}
	s := lmtest.NewServer(t, lmtest.WithDataset(d), lmtest.WithFineTuneStep(10*time.Millisecond))
	predict := signature.MustParse("question -> answer")
	chat := &adapter.ChatAdapter{NoFallback: true}

	var data bytes.Buffer
	for _, ex := range train {
		msgs, err := chat.Format(predict, nil, map[string]any{"question": ex.Input})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, lm.Message{Role: "assistant", Content: chat.FormatAssistant(predict, map[string]any{"answer": ex.Answer})})
		line, err := json.Marshal(map[string]any{"messages": msgs})
		if err != nil {
			t.Fatal(err)
		}
		data.Write(append(line, '\n'))
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("purpose", "fine-tune")
	fw, _ := mw.CreateFormFile("file", "train.jsonl")
	_, _ = fw.Write(data.Bytes())
	_ = mw.Close()
	var file struct{ ID string }
	call(t, http.MethodPost, s.URL()+"/files", mw.FormDataContentType(), &form, &file)
	body, _ := json.Marshal(map[string]any{"model": lmtest.DefaultModel, "training_file": file.ID, "suffix": "capitals"})
	var job struct{ ID string }
	call(t, http.MethodPost, s.URL()+"/fine_tuning/jobs", "application/json", bytes.NewBuffer(body), &job)
	var done struct {
		Status         string `json:"status"`
		FineTunedModel string `json:"fine_tuned_model"`
	}
	for deadline := time.Now().Add(10 * time.Second); done.Status != lmtest.JobSucceeded; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("job %s is still %q", job.ID, done.Status)
		}
		call(t, http.MethodGet, s.URL()+"/fine_tuning/jobs/"+job.ID, "", nil, &done)
	}
	jobs := s.FineTuneJobs()
	if len(jobs) != 1 || jobs[0].CorrectExamples != len(train) {
		t.Fatalf("jobs %+v; want one that counted %d correct examples", jobs, len(train))
	}

	base := runTask(t, s, d, dev, taskPrompt{name: "base", adapter: chat, sig: predict})
	tuned := runTask(t, s, d, dev, taskPrompt{name: "tuned", adapter: chat, sig: predict, model: done.FineTunedModel})
	k := d.Skill()
	bonus := k.TunedWeight * float64(min(len(train), k.TunedMaxExamples))
	t.Logf("zero-shot over %d dev questions: base %.3f, %s %.3f (logit bonus %.2f)", len(dev), base.acc, done.FineTunedModel, tuned.acc, bonus)
	if tuned.acc < base.acc+0.2 {
		t.Errorf("tuned accuracy %.3f, want at least the base's %.3f + 20 points", tuned.acc, base.acc)
	}
}

func call(t *testing.T, method, url, contentType string, body *bytes.Buffer, out any) {
	t.Helper()
	var req *http.Request
	var err error
	if body == nil {
		req, err = http.NewRequestWithContext(t.Context(), method, url, nil)
	} else {
		req, err = http.NewRequestWithContext(t.Context(), method, url, body)
	}
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e bytes.Buffer
		_, _ = e.ReadFrom(resp.Body)
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, e.String())
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}
