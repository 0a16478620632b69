// Package redact removes configured secrets — API keys, values of custom
// LM headers, credentials and query parameters of base URLs — from text
// before it is logged, stored in the trace database or sent to a client.
// A Redactor is built once from a program's LM configuration (see
// programfile.Spec.Secrets) and applied wherever errors are written.
package redact

import (
	"bytes"
	"io"
	"net/url"
	"slices"
	"strings"
)

// Marker replaces each secret.
const Marker = "[redacted]"

// MinSecretLen is the shortest value treated as a secret: a shorter one
// ("1", "on") would blank out ordinary text wherever it occurs.
const MinSecretLen = 4

// Redactor replaces secrets with Marker. The nil *Redactor and one built
// from no secrets leave text as it is. Safe for concurrent use.
type Redactor struct {
	r *strings.Replacer
}

// New returns a Redactor for secrets. Each is also matched in its URL
// query-escaped and path-escaped forms, as it appears inside a URL; empty
// and short values (under MinSecretLen bytes) are ignored.
func New(secrets ...string) *Redactor {
	seen := map[string]bool{}
	var all []string
	add := func(s string) {
		if len(s) >= MinSecretLen && !seen[s] {
			seen[s] = true
			all = append(all, s)
		}
	}
	for _, s := range secrets {
		s = strings.TrimSpace(s)
		add(s)
		add(url.QueryEscape(s))
		add(url.PathEscape(s))
	}
	if len(all) == 0 {
		return &Redactor{}
	}
	// The longest first: a secret holding another is replaced whole.
	slices.SortFunc(all, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(all))
	for _, s := range all {
		pairs = append(pairs, s, Marker)
	}
	return &Redactor{r: strings.NewReplacer(pairs...)}
}

// String returns s with every secret replaced by Marker.
func (r *Redactor) String(s string) string {
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// Func returns String as a function value, for options that take one; nil
// when r redacts nothing.
func (r *Redactor) Func() func(string) string {
	if r == nil || r.r == nil {
		return nil
	}
	return r.String
}

// Writer returns a writer that redacts each Write before passing it to w.
// Loggers write a line per call, so a secret is never split between two.
func (r *Redactor) Writer(w io.Writer) io.Writer {
	if r == nil || r.r == nil {
		return w
	}
	return &writer{r: r, w: w}
}

type writer struct {
	r *Redactor
	w io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	out := w.r.r.Replace(string(p))
	if len(out) == len(p) && out == string(p) {
		if _, err := w.w.Write(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if _, err := io.Copy(w.w, bytes.NewReader([]byte(out))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush flushes the underlying writer when it can be flushed.
func (w *writer) Flush() error {
	if f, ok := w.w.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil
}

// Error returns err with its message redacted, keeping err in its chain
// (errors.Is and errors.As still see it); nil for nil, and err itself
// when its message holds no secret.
func (r *Redactor) Error(err error) error {
	if err == nil || r == nil || r.r == nil {
		return err
	}
	msg := err.Error()
	if red := r.r.Replace(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// URLSecrets returns the secrets a URL carries: its user name and
// password, and the value of each query parameter. A URL that does not
// parse gives its whole text after the first '?', if any.
func URLSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		if _, q, ok := strings.Cut(raw, "?"); ok {
			return []string{q}
		}
		return nil
	}
	var out []string
	if u.User != nil {
		out = append(out, u.User.Username())
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
	}
	for _, vs := range u.Query() {
		out = append(out, vs...)
	}
	if u.RawQuery != "" {
		out = append(out, u.RawQuery)
	}
	return out
}
