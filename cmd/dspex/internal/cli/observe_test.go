package cli

import (
	"errors"
	"testing"
)

func TestObserveFlagsCheckLevel(t *testing.T) {
	cases := []struct {
		in, want string
		bad      bool
	}{
		{in: "warn", want: "warn"},
		{in: " DEBUG ", want: "debug"},
		{in: "Warning", want: "warn"},
		{in: "OFF", want: "off"},
		{in: "loud", bad: true},
		{in: "", bad: true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			f := &observeFlags{logLevel: c.in}
			err := f.checkLevel()
			var ee *ExitError
			switch {
			case c.bad && (!errors.As(err, &ee) || ee.Code != 2):
				t.Fatalf("checkLevel(%q) = %v, want a usage error", c.in, err)
			case !c.bad && err != nil:
				t.Fatalf("checkLevel(%q) = %v", c.in, err)
			case !c.bad && f.logLevel != c.want:
				t.Errorf("checkLevel(%q) left %q, want %q", c.in, f.logLevel, c.want)
			}
		})
	}
}
