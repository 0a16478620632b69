package runenv

import (
	"testing"

	"github.com/dspex/dspex/core/lm"
	"github.com/dspex/dspex/core/programfile"
)

func TestOpen(t *testing.T) {
	spec, err := programfile.Parse("p.yaml", []byte("lm: {model: gpt-4o-mini, base_url: http://127.0.0.1:9/v1}\nprogram: {module: predict, signature: q -> a}\n"))
	if err != nil {
		t.Fatal(err)
	}
	env, err := Open(t.Context(), spec, Options{CachePath: "memory"})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer env.Close()
	if env.LM.Model() != "gpt-4o-mini" || env.Cache == nil {
		t.Errorf("env = %+v", env)
	}
	if got := lm.ResponseFormatFor(env.LM); got != lm.ResponseFormatJSONSchema {
		t.Errorf("auto response format for gpt-4o-mini = %q, want json_schema", got)
	}
}

func TestResponseFormatSetting(t *testing.T) {
	for _, mode := range []string{"json_schema", "json_object", "none"} {
		spec, err := programfile.Parse("p.yaml", []byte("lm: {model: llama3, base_url: http://127.0.0.1:9/v1, response_format: "+mode+"}\nprogram: {module: predict, signature: a -> b}\n"))
		if err != nil {
			t.Fatal(err)
		}
		env, err := Open(t.Context(), spec, Options{CachePath: "memory"})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if got := lm.ResponseFormatFor(env.LM); string(got) != mode {
			t.Errorf("response_format: %s gives %q", mode, got)
		}
		env.Close()
	}
}
