package teleprompt_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/example"
	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/lm/lmtest"
	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/metric"
	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
	"github.com/dspex/dspex/core/teleprompt"
)

// simEmbedder embeds with the simulator's bag-of-words vectors (1024
// dimensions, so that distinct words rarely share one).
func simEmbedder(t testing.TB, srv *lmtest.Server) lm.Embedder {
	t.Helper()
	emb, err := openai.NewEmbedder(openai.EmbedderConfig{Model: "dspex-sim-embed", BaseURL: srv.URL(),
		APIKeyEnv: "DSPEX_TEST_UNSET", Dimensions: 1024})
	if err != nil {
		t.Fatal(err)
	}
	return emb
}

func knnCompile(t testing.TB, ctx context.Context, opt *teleprompt.KNNFewShot, student module.Program, train []example.Example) *teleprompt.KNNProgram {
	t.Helper()
	p, err := opt.Compile(ctx, student, train)
	if err != nil {
		t.Fatal(err)
	}
	kp, ok := p.(*teleprompt.KNNProgram)
	if !ok {
		t.Fatalf("Compile returned %T, want *teleprompt.KNNProgram", p)
	}
	return kp
}

// The training set is embedded once, as DSPy's KNN writes examples
// ("question: ..."), and a question's neighbours are the training examples
// most similar to it: those on its topic.
func TestKNNNeighbors(t *testing.T) {
	ctx, train, dev, srv := capitals(t)
	emb := simEmbedder(t, srv)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	before := srv.Stats().Embeddings
	prog := knnCompile(t, ctx, &teleprompt.KNNFewShot{Embedder: emb, Metric: metric.ExactMatch("answer")}, student, train)
	if n := srv.Stats().Embeddings - before; n != 1 {
		t.Errorf("compile made %d embeddings requests, want 1", n)
	}
	if prog.K() != teleprompt.DefaultKNNK {
		t.Errorf("K %d, want the default %d", prog.K(), teleprompt.DefaultKNNK)
	}
	var embedded []string
	for _, r := range srv.Requests() {
		if r.Path == "/v1/embeddings" {
			embedded = r.Input
			break
		}
	}
	if len(embedded) != len(train) || embedded[0] != "question: "+train[0].String("question") {
		t.Fatalf("embedded texts %q..., want %d texts like %q", embedded[:min(len(embedded), 1)], len(train), "question: "+train[0].String("question"))
	}

	// The expected neighbours, by brute force over the same vectors.
	texts := make([]string, len(train))
	index := map[string]int{}
	for i, ex := range train {
		texts[i] = "question: " + ex.String("question")
		index[ex.String("question")] = i
	}
	vecs, _, err := emb.Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	cosine := func(a, b []float32) float64 {
		var d, na, nb float64
		for i := range a {
			d += float64(a[i]) * float64(b[i])
			na += float64(a[i]) * float64(a[i])
			nb += float64(b[i]) * float64(b[i])
		}
		return d / math.Sqrt(na*nb)
	}
	offTopic := 0
	for _, q := range dev[:30] {
		got, err := prog.Neighbors(ctx, q.Inputs())
		if err != nil {
			t.Fatal(err)
		}
		qv, _, err := emb.Embed(ctx, []string{"question: " + q.String("question")})
		if err != nil {
			t.Fatal(err)
		}
		order := make([]int, len(train))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool {
			return cosine(qv[0], vecs[order[a]]) > cosine(qv[0], vecs[order[b]])+1e-6
		})
		if len(got) != 3 {
			t.Fatalf("%d neighbours, want 3", len(got))
		}
		for i, ex := range got {
			// Equal similarities may come in either order; the scores must
			// be those of the brute-force ranking.
			want := order[i]
			if g := cosine(qv[0], vecs[index[ex.String("question")]]); math.Abs(g-cosine(qv[0], vecs[want])) > 1e-5 {
				t.Errorf("%q: neighbour %d is %q (cosine %.3f), want %q (%.3f)", q.String("question"), i, ex.String("question"), g,
					train[want].String("question"), cosine(qv[0], vecs[want]))
			}
			if ex.String("topic") != q.String("topic") {
				offTopic++
			}
		}
		// The nearest shares the question's topic words.
		if got[0].String("topic") != q.String("topic") {
			t.Errorf("%q (%s): nearest neighbour %q is on %s", q.String("question"), q.String("topic"), got[0].String("question"), got[0].String("topic"))
		}
	}
	if offTopic > 3 {
		t.Errorf("%d of 90 neighbours are off the question's topic", offTopic)
	}
}

// Each call's program gets its demos from the call's neighbours only; the
// wrapped program itself keeps none, and the student is not changed.
func TestKNNProgramDemosFromNeighbors(t *testing.T) {
	ctx, train, dev, srv := capitals(t)
	student := module.NewChainOfThought(signature.MustParse("question -> answer"))
	opt := &teleprompt.KNNFewShot{K: 4, Embedder: simEmbedder(t, srv), Metric: metric.ExactMatch("answer")}
	prog := knnCompile(t, ctx, opt, student, train)
	if names := prog.NamedPredictors(); len(names) != 1 || names[0].Name != "predict" {
		t.Fatalf("predictors %v, want the student's", names)
	}
	for _, q := range dev[:5] {
		neighbours, err := prog.Neighbors(ctx, q.Inputs())
		if err != nil {
			t.Fatal(err)
		}
		call, err := prog.ProgramFor(ctx, q.Inputs())
		if err != nil {
			t.Fatal(err)
		}
		demos := call.NamedPredictors()[0].Predictor.Demos()
		if len(demos) == 0 || len(demos) > 4 {
			t.Errorf("%q: %d demos, want 1 to 4", q.String("question"), len(demos))
		}
		for _, d := range demos {
			if !slices.ContainsFunc(neighbours, func(n example.Example) bool { return n.String("question") == d.String("question") }) {
				t.Errorf("%q: demo %q is not a neighbour", q.String("question"), d.String("question"))
			}
		}
	}
	if n := len(prog.NamedPredictors()[0].Predictor.Demos()); n != 0 {
		t.Errorf("the compiled program holds %d demos", n)
	}
	clone := prog.Clone()
	clone.NamedPredictors()[0].Predictor.SetDemos(train[:1])
	if len(prog.NamedPredictors()[0].Predictor.Demos()) != 0 || len(student.Predict.Demos()) != 0 {
		t.Error("a clone shares predictors with the original or the student")
	}
}

// The compiled program answers dev questions end to end; with demos from
// neighbours on the question's topic it beats the zero-shot student.
func TestKNNEndToEnd(t *testing.T) {
	ctx, train, dev, srv := capitals(t)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	for _, m := range []metric.Metric{metric.ExactMatch("answer"), nil} {
		prog := knnCompile(t, ctx, &teleprompt.KNNFewShot{Embedder: simEmbedder(t, srv), Metric: m}, student, train)
		pred, err := prog.Forward(ctx, dev[0].Inputs())
		if err != nil {
			t.Fatal(err)
		}
		if pred.String("answer") == "" {
			t.Errorf("no answer for %q", dev[0].String("question"))
		}
	}
	prog := knnCompile(t, ctx, &teleprompt.KNNFewShot{Embedder: simEmbedder(t, srv), Metric: metric.ExactMatch("answer")}, student, train)
	base, knn := score(t, ctx, student, dev[:40]), score(t, ctx, prog, dev[:40])
	t.Logf("dev[:40] score: zero-shot %.1f, KNNFewShot %.1f", base, knn)
	if knn <= base {
		t.Errorf("KNNFewShot scored %.1f, zero-shot %.1f", knn, base)
	}
}

func TestKNNErrors(t *testing.T) {
	ctx, train, _, srv := capitals(t)
	student := module.NewPredict(signature.MustParse("question -> answer"))
	emb := simEmbedder(t, srv)
	unmarked := []example.Example{example.New(train[0].Map())}
	for _, tc := range []struct {
		name  string
		opt   *teleprompt.KNNFewShot
		train []example.Example
		want  string
		is    error
	}{
		{"no embedder", &teleprompt.KNNFewShot{}, train, "embedder is required", teleprompt.ErrNoEmbedder},
		{"empty trainset", &teleprompt.KNNFewShot{Embedder: emb}, nil, "training set is empty", nil},
		{"inputs not marked", &teleprompt.KNNFewShot{Embedder: emb}, unmarked, "example 0 has no input keys", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.opt.Compile(ctx, student, tc.train)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not match %v", err, tc.is)
			}
		})
	}
}
