package program

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/dspex/dspex/core/module"
	"github.com/dspex/dspex/core/signature"
)

// FuzzLoadState feeds arbitrary state files to a bare Predict and to a
// program whose one predictor is "self" (loaded flat or nested): loading
// never panics, and a state that loads saves and loads again.
func FuzzLoadState(f *testing.F) {
	if files, err := filepath.Glob(filepath.Join(stateDir, "*.json")); err == nil {
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	flat := `{"traces": [], "train": [], "demos": [{"q": "1+1", "a": "2"}], "signature": {"instructions": "x", "fields": [{"prefix": "Q:", "description": "${q}"}, {"prefix": "A:", "description": "${a}"}]}, "lm": null}`
	f.Add([]byte(flat))
	f.Add([]byte(`{"self": ` + flat + `, "metadata": {}}`))
	f.Add([]byte(`{"self": 1, "signature": {}}`))
	f.Add([]byte(`{"self": {"self": {}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sig := signature.MustParse("q -> a")
		for _, p := range []module.Program{module.NewPredict(sig), selfWrapper{module.NewPredict(sig)}} {
			if err := LoadState("fuzz.json", data, p); err != nil {
				continue
			}
			var buf bytes.Buffer
			if err := SaveState(&buf, p); err != nil {
				t.Fatalf("%T: save after a successful load: %v", p, err)
			}
			if err := LoadState("resaved.json", buf.Bytes(), p.Clone()); err != nil {
				t.Fatalf("%T: a saved state does not load again: %v\n%s", p, err, buf.String())
			}
		}
	})
}
