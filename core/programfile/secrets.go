package programfile

import (
	"cmp"
	"os"
	"strings"

	"github.com/dspex/dspex/core/lm/openai"
	"github.com/dspex/dspex/core/redact"
)

// anthropicKeyEnv is the API key variable of an anthropic endpoint that
// names none, anthropic.DefaultAPIKeyEnv: written out here so that reading a
// program file does not link the Anthropic SDK (TestSecretsAnthropicKey
// checks that the two agree).
const anthropicKeyEnv = "ANTHROPIC_API_KEY"

// Secrets returns the values the program's endpoints (lm:, models: and
// embeddings:) send that must not reach logs, traces or HTTP clients: each
// API key (read from its environment variable), every custom header value,
// and the credentials and query parameters of each base URL. Build a
// redact.Redactor from them.
func (s *Spec) Secrets() []string {
	var out []string
	endpoint := func(provider, baseURL, keyEnv string, headers map[string]string) {
		def := openai.DefaultAPIKeyEnv
		if provider == ProviderAnthropic {
			def = anthropicKeyEnv
		}
		if key := strings.TrimSpace(os.Getenv(cmp.Or(keyEnv, def))); key != "" {
			out = append(out, key)
		}
		for _, v := range headers {
			out = append(out, v)
		}
		out = append(out, redact.URLSecrets(baseURL)...)
	}
	endpoint(s.LM.Provider, s.LM.BaseURL, s.LM.APIKeyEnv, s.LM.Headers)
	for _, m := range s.Models {
		endpoint(m.Provider, m.BaseURL, m.APIKeyEnv, m.Headers)
	}
	if e := s.Embeddings; e != nil {
		endpoint("", e.BaseURL, e.APIKeyEnv, e.Headers)
	}
	return out
}

// Redactor returns a redactor of the program's Secrets.
func (s *Spec) Redactor() *redact.Redactor { return redact.New(s.Secrets()...) }
