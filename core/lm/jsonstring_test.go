package lm

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzAppendJSONString: both modes write exactly encoding/json's bytes.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\ nl\n tab\t \b\f\r \x01 \x7f \u2028 \u2029 é 日本 \xff<>&", "\xe2\x82 cut"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, html := range []bool{false, true} {
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(html)
			if err := enc.Encode(s); err != nil {
				t.Fatal(err)
			}
			got := AppendJSONString(nil, s, html)
			if w := bytes.TrimSuffix(want.Bytes(), []byte("\n")); !bytes.Equal(got, w) {
				t.Fatalf("escapeHTML=%v: %q encodes to %s, encoding/json to %s", html, s, got, w)
			}
		}
	})
}
