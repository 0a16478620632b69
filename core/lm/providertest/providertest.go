// Package providertest checks what every LM provider (core/lm/openai,
// core/lm/anthropic, one of your own) promises of its errors, for the
// providers' tests.
package providertest

import (
	"errors"
	"strings"
	"testing"

	"github.com/dspex/dspex/core/lm"
)

// errorKinds are the kinds of LM errors; a provider's error matches
// exactly one.
var errorKinds = []error{
	lm.ErrAuth, lm.ErrNotFound, lm.ErrRateLimited, lm.ErrContextWindow, lm.ErrBadRequest,
	lm.ErrServer, lm.ErrTimeout, lm.ErrCanceled, lm.ErrConnection, lm.ErrBadResponse,
}

// CheckError asserts what every provider promises of its errors: err is an
// *lm.Error of kind want that matches no other kind with errors.Is, names
// model and baseURL, and does not reveal secret (the API key). It returns
// the *lm.Error for further checks.
func CheckError(t testing.TB, err, want error, model, baseURL, secret string) *lm.Error {
	t.Helper()
	var e *lm.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *lm.Error", err, err)
	}
	for _, k := range errorKinds {
		if got := errors.Is(err, k); got != (k == want) {
			t.Errorf("errors.Is(err, %v) = %v; err = %v", k, got, err)
		}
	}
	if e.Model != model {
		t.Errorf("Model = %q, want %q", e.Model, model)
	}
	if e.URL != baseURL {
		t.Errorf("URL = %q, want %q", e.URL, baseURL)
	}
	if secret != "" && (strings.Contains(err.Error(), secret) || strings.Contains(e.Message, secret)) {
		t.Errorf("error %q reveals the API key", err)
	}
	return e
}
