package programfile_test

import (
	"slices"
	"testing"

	"github.com/dspex/dspex/core/lm/anthropic"
	"github.com/dspex/dspex/core/programfile"
)

// An anthropic endpoint that names no api_key_env reads the variable the
// Anthropic client reads, and its value is a secret.
func TestSecretsAnthropicKey(t *testing.T) {
	t.Setenv(anthropic.DefaultAPIKeyEnv, "sk-ant-test-secret")
	spec, err := programfile.Parse("p.yaml", []byte("lm: {model: m, provider: anthropic}\nprogram: {module: predict, signature: q -> a}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Secrets(); !slices.Contains(got, "sk-ant-test-secret") {
		t.Errorf("Secrets() = %q, want the %s value among them", got, anthropic.DefaultAPIKeyEnv)
	}
}
