package finetune

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

var taskDir = filepath.Join("..", "..", "examples", "capitals")

// goldenInfo is testdata/golden/finetune.json, written with finetune.jsonl
// by gen_dspy_finetune.py beside them.
type goldenInfo struct {
	DSPyVersion string `json:"dspy_version"`
	DataFormat  string `json:"data_format"`
	NTrain      int    `json:"ntrain"`
	Demos       int    `json:"demos"`
	Model       string `json:"model"`
	Scores      []bool `json:"scores"`
	Lines       int    `json:"lines"`
}

func readGolden(t *testing.T) (goldenInfo, []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "golden")
	b, err := os.ReadFile(filepath.Join(dir, "finetune.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenInfo
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "finetune.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return g, data
}

// simModel is the simulator's task model (dataset mode, the capitals
// task), as gen_dspy_finetune.py starts it: `dspex mock-lm --dataset
// train.jsonl --dataset dev.jsonl`.
func simServer(t testing.TB, opts ...lmtest.Option) *lmtest.Server {
	t.Helper()
	ds, err := lmtest.LoadDatasetFiles([]string{filepath.Join(taskDir, "train.jsonl"), filepath.Join(taskDir, "dev.jsonl")}, lmtest.DatasetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return lmtest.NewServer(t, append([]lmtest.Option{lmtest.WithDataset(ds)}, opts...)...)
}

func simLM(t testing.TB, url string) lm.LM {
	t.Helper()
	c, err := openai.New(openai.Config{Model: lmtest.DefaultModel, BaseURL: url, APIKeyEnv: "DSPEX_TEST_UNSET"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// goldenTask is the golden's student and data: Predict("question ->
// answer") with dev[:demos] as demos, and train[:ntrain].
func goldenTask(t testing.TB, ntrain, demos int) (*module.Predict, []example.Example) {
	t.Helper()
	train, err := example.LoadJSONL(filepath.Join(taskDir, "train.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := example.LoadJSONL(filepath.Join(taskDir, "dev.jsonl"), "question")
	if err != nil {
		t.Fatal(err)
	}
	student := module.NewPredict(signature.MustParse("question -> answer"), module.WithDemos(dev[:demos]...))
	return student, train[:ntrain]
}

// TestDSPyTrainingFileGolden bootstraps the golden's student on the
// golden's data against the same simulator, and checks that the training
// file is, byte for byte, the one DSPy 3.4.1's BootstrapFinetune wrote
// (gen_dspy_finetune.py): the same passing traces, each call formatted by
// the chat adapter with its demos, shuffled with random.Random(0), written
// as orjson writes it.
func TestDSPyTrainingFileGolden(t *testing.T) {
	g, want := readGolden(t)
	if g.DataFormat != "chat" {
		t.Fatalf("golden data format %q", g.DataFormat)
	}
	srv := simServer(t)
	student, train := goldenTask(t, g.NTrain, g.Demos)
	ctx := module.WithLM(t.Context(), simLM(t, srv.URL()))
	traces, err := Bootstrap(ctx, student, train, metric.ExactMatch("answer"), 4)
	if err != nil {
		t.Fatal(err)
	}
	for i, tr := range traces {
		if tr.Err != nil {
			t.Fatalf("example %d: %v", i, tr.Err)
		}
		if i < len(g.Scores) && tr.Passed() != g.Scores[i] {
			t.Errorf("example %d passed=%v, DSPy's %v", i, tr.Passed(), g.Scores[i])
		}
	}
	lines, err := TrainingData(traces, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	got := JSONL(lines)
	if len(lines) != g.Lines {
		t.Errorf("%d lines, DSPy's %d", len(lines), g.Lines)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < min(len(gl), len(wl)); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("line %d differs from DSPy's:\n got %s\nwant %s", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("training file differs from DSPy's: %d bytes, want %d", len(got), len(want))
	}
}

// TestJSONLEscapes writes strings as orjson does: quotes, backslashes and
// control characters escaped (\b \t \n \f \r by name, the rest \u00xx),
// DEL, non-ASCII and "/" as they are, invalid UTF-8 as U+FFFD.
func TestJSONLEscapes(t *testing.T) {
	in := "a\"b\\c\x00\x01\b\t\n\x0b\f\r\x1f\x7f/é<>&\u2028😀\xff"
	got := string(JSONL([]Line{{Messages: []lm.Message{{Role: "user", Content: in}}}}))
	want := `{"messages":[{"role":"user","content":"a\"b\\c\u0000\u0001\b\t\n\u000b\f\r\u001f` + "\x7f/é<>&\u2028😀\uFFFD" + `"}]}` + "\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// And it is JSON that reads back to the string (less the invalid byte).
	var v struct {
		Messages []lm.Message `json:"messages"`
	}
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Fatal(err)
	}
	if v.Messages[0].Content != strings.TrimSuffix(in, "\xff")+"\uFFFD" {
		t.Errorf("read back %q", v.Messages[0].Content)
	}
}
