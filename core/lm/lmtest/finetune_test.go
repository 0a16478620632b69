package lmtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the job timeline.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// ftServer starts a simulator whose job timeline follows a fake clock.
func ftServer(t *testing.T, cfg Config) (*Server, *fakeClock) {
	t.Helper()
	s := startServer(t, cfg)
	c := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s.clock = c.now
	return s, c
}

// trainingLine is one chat example as DSPy's ChatAdapter writes it.
func trainingLine(q, a string) string {
	msgs := dsPrompt(false, answerOnly, defaultInstr, nil, q)
	msgs = append(msgs, Message{Role: "assistant", Content: chatText([]string{"answer"}, []any{a})})
	wire := make([]map[string]string, len(msgs))
	for i, m := range msgs {
		wire[i] = map[string]string{"role": m.Role, "content": m.Content}
	}
	b, err := json.Marshal(map[string]any{"messages": wire})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func upload(t *testing.T, s *Server, purpose, name string, data []byte) (int, map[string]any) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if purpose != "" {
		if err := mw.WriteField("purpose", purpose); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := mw.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(data)
	_ = mw.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL()+"/files", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return doJSON(t, req)
}

func doJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s: decode %q: %v", req.Method, req.URL, data, err)
	}
	return resp.StatusCode, out
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return doJSON(t, req)
}

func postJSON(t *testing.T, url string, body any) (int, map[string]any) {
	t.Helper()
	resp, data := post(t, url, body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("decode %q: %v", data, err)
	}
	return resp.StatusCode, out
}

func errMessage(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

func TestParseTrainingFile(t *testing.T) {
	good := `{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}`
	exs, err := ParseTrainingFile([]byte(good + "\r\n" + good + "\n"))
	if err != nil || len(exs) != 2 || exs[1].Messages[2] != (Message{"assistant", "a"}) {
		t.Fatalf("good file: %v, %+v", err, exs)
	}
	for _, tc := range []struct {
		name, data string
		line       int
		want       string
	}{
		{"empty file", "", 0, "no examples"},
		{"blank line", good + "\n\n" + good, 2, "empty line"},
		{"not json", good + "\nhello", 2, "not a JSON object"},
		{"array", `[1]`, 1, "not a JSON object"},
		{"trailing", good + ` {}`, 1, "text after"},
		{"no messages", `{"prompt": "x"}`, 1, `missing key "messages"`},
		{"empty messages", `{"messages": []}`, 1, "is empty"},
		{"bad role", `{"messages": [{"role": "robot", "content": "x"}]}`, 1, `role is "robot"`},
		{"null message", `{"messages": [null]}`, 1, "role is missing"},
		{"number content", `{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "a"}]}`, 1, "content must be a string"},
		{"no content", `{"messages": [{"role": "user"}]}`, 1, "missing content"},
		{"no user", `{"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]}`, 1, "no user message"},
		{"ends with user", `{"messages": [{"role": "user", "content": "q"}]}`, 1, "must be the assistant's"},
		{"bad utf8", "\xff", 0, "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTrainingFile([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			var le *TrainingFileError
			if got := errors.As(err, &le); got != (tc.line > 0) || (got && le.Line != tc.line) {
				t.Errorf("err = %#v, want line %d", err, tc.line)
			}
			if tc.line > 0 && !strings.HasPrefix(err.Error(), fmt.Sprintf("line %d: ", tc.line)) {
				t.Errorf("message %q does not start with the line", err)
			}
		})
	}
}

func FuzzParseTrainingFile(f *testing.F) {
	f.Add([]byte(trainingLine("What is the capital of France?", "Paris") + "\n"))
	f.Add([]byte(`{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}`))
	f.Add([]byte("{}\n\n"))
	f.Add([]byte(`{"messages": [{"role": "user", "content": "\u00e9"}, {"role": "tool", "content": ""}]}` + "\r\n"))
	d, err := ReadDataset(strings.NewReader(strings.Join(testDatasetLines, "\n")), "test.jsonl", DatasetOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		exs, err := ParseTrainingFile(data)
		if err != nil {
			if exs != nil {
				t.Fatal("examples returned with an error")
			}
			var le *TrainingFileError
			if errors.As(err, &le) && le.Line < 1 {
				t.Fatalf("line %d", le.Line)
			}
			return
		}
		if len(exs) == 0 {
			t.Fatal("no examples and no error")
		}
		for _, ex := range exs {
			if ex.Messages[len(ex.Messages)-1].Role != "assistant" {
				t.Fatal("example does not end with the assistant")
			}
		}
		if n := len(d.correctExamples(exs)); n > d.Len() || n > len(exs) {
			t.Fatalf("%d correct examples of %d", n, len(exs))
		}
	})
}

func TestFineTuneJobLifecycle(t *testing.T) {
	const step = time.Second
	s, clock := ftServer(t, Config{FineTuneStep: step})
	data := []byte(trainingLine("q1", "a1") + "\n" + trainingLine("q2", "a2") + "\n")
	status, file := upload(t, s, "fine-tune", "train.jsonl", data)
	if status != 200 || file["id"] != "file-sim-000001" || file["bytes"] != float64(len(data)) ||
		file["purpose"] != "fine-tune" || file["filename"] != "train.jsonl" || file["status"] != "processed" {
		t.Fatalf("upload: %d %v", status, file)
	}
	if status, got := getJSON(t, s.URL()+"/files/file-sim-000001"); status != 200 || got["id"] != file["id"] {
		t.Fatalf("get file: %d %v", status, got)
	}
	status, job := postJSON(t, s.URL()+"/fine_tuning/jobs", map[string]any{
		"model": "dspex-sim", "training_file": file["id"], "suffix": "qa",
		"hyperparameters": map[string]any{"n_epochs": 2}, "metadata": map[string]string{"dspex_idempotency_key": "k1"},
	})
	if status != 200 || job["id"] != "ftjob-sim-000001" || job["status"] != JobValidatingFiles || job["fine_tuned_model"] != nil {
		t.Fatalf("create: %d %v", status, job)
	}
	if md, _ := job["metadata"].(map[string]any); md["dspex_idempotency_key"] != "k1" {
		t.Errorf("metadata = %v", job["metadata"])
	}
	jobURL := s.URL() + "/fine_tuning/jobs/ftjob-sim-000001"
	want := []string{JobValidatingFiles, JobQueued, JobRunning, JobRunning, JobRunning, JobSucceeded}
	for i, w := range want {
		_, got := getJSON(t, jobURL)
		if got["status"] != w {
			t.Fatalf("after %d steps: status %v, want %s", i, got["status"], w)
		}
		if w == JobSucceeded {
			if got["fine_tuned_model"] != "ft:dspex-sim:qa:ftjob-sim-000001" || got["finished_at"] == nil || got["trained_tokens"] == nil {
				t.Errorf("succeeded job = %v", got)
			}
		}
		clock.advance(step)
	}
	_, events := getJSON(t, jobURL+"/events?limit=100")
	data2, _ := events["data"].([]any)
	var msgs []string
	for _, e := range data2 {
		msgs = append(msgs, e.(map[string]any)["message"].(string))
	}
	if len(msgs) != 8 || !strings.HasPrefix(msgs[len(msgs)-1], "Validating training file") ||
		msgs[0] != "The job has successfully completed" || !strings.Contains(msgs[2], "Step 3/3") {
		t.Errorf("events (newest first) = %q", msgs)
	}
	// Paging: two at a time, after the last id seen.
	var paged []string
	after := ""
	for range 10 {
		_, page := getJSON(t, jobURL+"/events?limit=2&after="+after)
		for _, e := range page["data"].([]any) {
			ev := e.(map[string]any)
			paged = append(paged, ev["message"].(string))
			after = ev["id"].(string)
		}
		if page["has_more"] != true {
			break
		}
	}
	if strings.Join(paged, "|") != strings.Join(msgs, "|") {
		t.Errorf("paged events = %q", paged)
	}
	// The tuned model is listed; the finished job cannot be cancelled.
	_, models := getJSON(t, s.URL()+"/models")
	if !strings.Contains(fmt.Sprint(models["data"]), "ft:dspex-sim:qa:ftjob-sim-000001") {
		t.Errorf("models = %v", models)
	}
	if status, got := postJSON(t, jobURL+"/cancel", map[string]any{}); status != 400 || !strings.Contains(errMessage(got), "already ended") {
		t.Errorf("cancel after success: %d %v", status, got)
	}
	jobs := s.FineTuneJobs()
	if len(jobs) != 1 || jobs[0].Status != JobSucceeded || jobs[0].Examples != 2 || jobs[0].Metadata["dspex_idempotency_key"] != "k1" {
		t.Errorf("FineTuneJobs = %+v", jobs)
	}
	if st := s.Stats(); st.Files != 1 || st.FineTuneJobs != 1 || st.Rejected != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestFineTuneFailCancelList(t *testing.T) {
	const step = time.Second
	s, clock := ftServer(t, Config{FineTuneStep: step})
	_, file := upload(t, s, "fine-tune", "t.jsonl", []byte(trainingLine("q", "a")))
	create := func(suffix, key string) string {
		status, job := postJSON(t, s.URL()+"/fine_tuning/jobs", map[string]any{
			"model": "base", "training_file": file["id"], "suffix": suffix, "metadata": map[string]string{"k": key},
		})
		if status != 200 {
			t.Fatalf("create: %d %v", status, job)
		}
		return job["id"].(string)
	}
	failing, cancelled, plain := create("fail", "a"), create("", "b"), create("x", "a")
	clock.advance(2 * step)
	if status, got := postJSON(t, s.URL()+"/fine_tuning/jobs/"+cancelled+"/cancel", nil); status != 200 || got["status"] != JobCancelled {
		t.Fatalf("cancel: %d %v", status, got)
	}
	clock.advance(10 * step)
	_, f := getJSON(t, s.URL()+"/fine_tuning/jobs/"+failing)
	e, _ := f["error"].(map[string]any)
	if f["status"] != JobFailed || e["code"] != FineTuneFailureCode || !strings.Contains(e["message"].(string), `suffix is "fail"`) || f["fine_tuned_model"] != nil {
		t.Errorf("failing job = %v", f)
	}
	_, c := getJSON(t, s.URL()+"/fine_tuning/jobs/"+cancelled)
	if c["status"] != JobCancelled || c["fine_tuned_model"] != nil {
		t.Errorf("cancelled job = %v", c)
	}
	_, ev := getJSON(t, s.URL()+"/fine_tuning/jobs/"+cancelled+"/events")
	if first := ev["data"].([]any)[0].(map[string]any); first["message"] != "Fine-tuning job cancelled" {
		t.Errorf("newest event of the cancelled job = %v", first)
	}
	_, p := getJSON(t, s.URL()+"/fine_tuning/jobs/"+plain)
	if p["status"] != JobSucceeded || p["fine_tuned_model"] != "ft:base:x:"+plain {
		t.Errorf("plain job = %v", p)
	}
	// Listing: newest first, paged, filtered by metadata.
	_, list := getJSON(t, s.URL()+"/fine_tuning/jobs?limit=2")
	ids := func(l map[string]any) (out []string) {
		for _, j := range l["data"].([]any) {
			out = append(out, j.(map[string]any)["id"].(string))
		}
		return out
	}
	if got := ids(list); fmt.Sprint(got) != fmt.Sprint([]string{plain, cancelled}) || list["has_more"] != true {
		t.Errorf("page 1 = %v, has_more %v", got, list["has_more"])
	}
	_, list = getJSON(t, s.URL()+"/fine_tuning/jobs?limit=2&after="+cancelled)
	if got := ids(list); fmt.Sprint(got) != fmt.Sprint([]string{failing}) || list["has_more"] != false {
		t.Errorf("page 2 = %v", got)
	}
	_, list = getJSON(t, s.URL()+"/fine_tuning/jobs?metadata%5Bk%5D=a")
	if got := ids(list); fmt.Sprint(got) != fmt.Sprint([]string{plain, failing}) {
		t.Errorf("filtered = %v", got)
	}
}

func TestFineTuneRejects(t *testing.T) {
	s, _ := ftServer(t, Config{MaxFileBytes: 1024})
	bad := []byte(trainingLine("q", "a")[:20] + "\n")
	for _, tc := range []struct {
		name          string
		purpose, file string
		data          []byte
		status        int
		want          string
	}{
		{"bad line", "fine-tune", "t.jsonl", []byte("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}\n" + string(bad)), 400, "invalid training file t.jsonl: line 2: not a JSON object"},
		{"purpose", "batch", "t.jsonl", []byte("x"), 400, `purpose "batch" is not supported`},
		{"no purpose", "", "t.jsonl", []byte("x"), 400, "missing form field purpose"},
		{"too big", "fine-tune", "t.jsonl", bytes.Repeat([]byte("x"), 2000), 413, "exceeds 1024 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, got := upload(t, s, tc.purpose, tc.file, tc.data)
			if status != tc.status || !strings.Contains(errMessage(got), tc.want) {
				t.Errorf("%d %v, want %d %q", status, got, tc.status, tc.want)
			}
		})
	}
	if status, got := postJSON(t, s.URL()+"/files", map[string]any{}); status != 400 || !strings.Contains(errMessage(got), "multipart/form-data") {
		t.Errorf("JSON upload: %d %v", status, got)
	}
	for _, tc := range []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"training_file": "file-x"}, "missing model"},
		{map[string]any{"model": "m", "training_file": "file-x"}, "no such file: file-x"},
		{map[string]any{"model": "m"}, "missing training_file"},
		{map[string]any{"model": "m", "training_file": "f", "suffix": strings.Repeat("s", 65)}, "suffix is longer"},
		{map[string]any{"model": "m", "training_file": "f", "hyperparameters": map[string]any{"n_epochs": -1}}, "positive number"},
		{map[string]any{"model": "m", "training_file": "f", "hyperparameters": map[string]any{"warmup": 1}}, `unknown hyperparameter "warmup"`},
		{map[string]any{"model": "m", "training_file": "f", "method": map[string]any{"type": "dpo"}}, "supervised jobs only"},
	} {
		if status, got := postJSON(t, s.URL()+"/fine_tuning/jobs", tc.body); status != 400 || !strings.Contains(errMessage(got), tc.want) {
			t.Errorf("create %v: %d %v, want %q", tc.body, status, got, tc.want)
		}
	}
	for _, path := range []string{"/fine_tuning/jobs/ftjob-none", "/fine_tuning/jobs/ftjob-none/events", "/files/file-none"} {
		if status, got := getJSON(t, s.URL()+path); status != 404 || !strings.Contains(errMessage(got), "no such") {
			t.Errorf("GET %s: %d %v", path, status, got)
		}
	}
	if status, _ := getJSON(t, s.URL()+"/fine_tuning/jobs?limit=0"); status != 400 {
		t.Errorf("limit 0: %d", status)
	}
	if st := s.Stats(); st.Files != 0 || st.FineTuneJobs != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// TestFineTunedModelSkill: a model tuned on correct answers answers the
// dataset's questions with the documented bonus, and every question the
// base model gets right it gets right too (the same draw, a higher p).
func TestFineTunedModelSkill(t *testing.T) {
	d := testDataset(t, DatasetOptions{})
	s, clock := ftServer(t, Config{Seed: 5, Dataset: d, FineTuneStep: time.Second})
	var lines []string
	for _, ex := range d.Examples()[:6] {
		lines = append(lines, trainingLine(ex.Input, ex.Answer))
	}
	lines = append(lines, trainingLine(d.Examples()[6].Input, "Dollar")) // a wrong answer counts for nothing
	lines = append(lines, trainingLine("Not in the dataset?", "x"))
	_, file := upload(t, s, "fine-tune", "t.jsonl", []byte(strings.Join(lines, "\n")))
	_, job := postJSON(t, s.URL()+"/fine_tuning/jobs", map[string]any{"model": "test-model", "training_file": file["id"], "suffix": "cap"})
	tuned := "ft:test-model:cap:" + job["id"].(string)

	ask := func(model string) (correct int) {
		for _, ex := range d.Examples() {
			body := dsBody(dsPrompt(false, answerOnly, defaultInstr, nil, ex.Input), map[string]any{"model": model})
			if normAnswer(chatAnswer(t, complete(t, s, body).Choices[0].Message.Content)) == normAnswer(ex.Answer) {
				correct++
			}
		}
		return correct
	}
	// Before the job succeeds the model id answers as any model does.
	base, early := ask("test-model"), ask(tuned)
	if early != base {
		t.Errorf("before success: tuned %d correct, base %d", early, base)
	}
	clock.advance(time.Minute)
	if jobs := s.FineTuneJobs(); jobs[0].CorrectExamples != 6 || jobs[0].Examples != 8 {
		t.Fatalf("job = %+v", jobs[0])
	}
	a, _ := d.Assess(dsPrompt(false, answerOnly, defaultInstr, nil, d.Examples()[0].Input))
	ta := d.withTuning(a, 6)
	k := DefaultSkill()
	if ta.TunedBonus != 6*k.TunedWeight || ta.Logit != a.Logit+ta.TunedBonus || ta.P <= a.P {
		t.Errorf("tuned assessment %+v vs %+v", ta, a)
	}
	if capped := d.withTuning(a, 100); capped.TunedBonus != float64(k.TunedMaxExamples)*k.TunedWeight {
		t.Errorf("cap: bonus %v", capped.TunedBonus)
	}
	var baseRight, tunedRight []bool
	for _, ex := range d.Examples() {
		for _, model := range []string{"test-model", tuned} {
			body := dsBody(dsPrompt(false, answerOnly, defaultInstr, nil, ex.Input), map[string]any{"model": model})
			ok := normAnswer(chatAnswer(t, complete(t, s, body).Choices[0].Message.Content)) == normAnswer(ex.Answer)
			recs := s.Requests()
			if rec := recs[len(recs)-1]; rec.Model != model || rec.Correct[0] != ok {
				t.Fatalf("record %+v for %s", rec, model)
			}
			if model == tuned {
				tunedRight = append(tunedRight, ok)
			} else {
				baseRight = append(baseRight, ok)
			}
		}
	}
	nb, nt := 0, 0
	for i := range baseRight {
		if baseRight[i] {
			nb++
			if !tunedRight[i] {
				t.Errorf("question %d: base right, tuned wrong", i)
			}
		}
		if tunedRight[i] {
			nt++
		}
	}
	t.Logf("base %d/%d correct, tuned %d/%d", nb, len(baseRight), nt, len(tunedRight))
	if nt <= nb {
		t.Errorf("the tuned model got %d right, the base model %d", nt, nb)
	}
}

// TestFineTuneConcurrent uploads and creates jobs from many goroutines:
// every id is distinct and the counters add up (run with -race).
func TestFineTuneConcurrent(t *testing.T) {
	s := NewServer(t, WithFineTuneStep(time.Millisecond))
	const n = 24
	var wg sync.WaitGroup
	ids := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, file := upload(t, s, "fine-tune", "t.jsonl", []byte(trainingLine(fmt.Sprint("q", i), "a")))
			if status != 200 {
				t.Errorf("upload: %d %v", status, file)
				return
			}
			status, job := postJSON(t, s.URL()+"/fine_tuning/jobs", map[string]any{"model": "m", "training_file": file["id"]})
			if status != 200 {
				t.Errorf("create: %d %v", status, job)
				return
			}
			ids[i] = job["id"].(string)
			getJSON(t, s.URL()+"/fine_tuning/jobs?limit=100")
			getJSON(t, s.URL()+"/fine_tuning/jobs/"+ids[i]+"/events")
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("id %q twice", id)
		}
		seen[id] = true
	}
	if st := s.Stats(); st.Files != n || st.FineTuneJobs != n {
		t.Errorf("stats = %+v", st)
	}
	// Real time: with a 1ms step every job ends within a bounded wait.
	deadline := time.Now().Add(5 * time.Second)
	for {
		done := 0
		for _, j := range s.FineTuneJobs() {
			if j.Status == JobSucceeded && j.FineTunedModel == "ft:m:"+j.ID {
				done++
			}
		}
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs succeeded", done, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFineTuneFaults: FineTuneFaults fail the fine-tuning endpoints only,
// numbered apart from model requests.
func TestFineTuneFaults(t *testing.T) {
	s := startServer(t, Config{FineTuneFaults: []Fault{{Kind: FaultServerError, FirstN: 2}}, Faults: []Fault{{Kind: FaultRateLimit, FirstN: 1}}})
	for i, want := range []int{500, 500, 200} {
		if status, got := getJSON(t, s.URL()+"/fine_tuning/jobs"); status != want {
			t.Errorf("request %d: %d %v, want %d", i+1, status, got, want)
		}
	}
	// The first model request gets the model fault, not the fine-tuning one.
	resp, _ := post(t, s.URL()+"/chat/completions", qaBody(nil))
	if resp.StatusCode != 429 {
		t.Errorf("first chat request: %d, want 429", resp.StatusCode)
	}
	if st := s.Stats(); st.Faults[FaultServerError] != 2 || st.Faults[FaultRateLimit] != 1 {
		t.Errorf("faults = %v", st.Faults)
	}
	if _, err := New(Config{FineTuneFaults: []Fault{{Kind: FaultTruncated, Rate: 1}}}); err == nil || !strings.Contains(err.Error(), "does not apply to the fine-tuning endpoints") {
		t.Errorf("truncated fine-tune fault: %v", err)
	}
}
