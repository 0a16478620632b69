package cli

import (
	"bytes"
	"strings"
	"testing"
)

// The JSON the commands print (cache stats, plugins list, traces list and
// show --json) keeps "->" and friends as they are.
func TestWriteJSONDoesNotEscapeHTML(t *testing.T) {
	var out bytes.Buffer
	s := &streams{in: strings.NewReader(""), out: &out, err: &bytes.Buffer{}}
	if err := writeJSON(s, map[string]string{"signature": "question -> answer", "note": "<b> & c"}); err != nil {
		t.Fatal(err)
	}
	if want := `{"note":"<b> & c","signature":"question -> answer"}` + "\n"; out.String() != want {
		t.Errorf("writeJSON wrote %q, want %q", out.String(), want)
	}
}
