// Package config holds the value types that configuration structs share —
// the LM layers' (core/lm), the program file's (core/programfile) and the
// plugin supervisor's (bridge) — so that each reads "500ms" the same way
// without importing the others. It imports nothing of the project.
package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written in configuration as a Go duration
// string ("500ms", "2m").
type Duration time.Duration

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"500ms\" or \"2m\"", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// String writes the duration as a Go duration string.
func (d Duration) String() string { return time.Duration(d).String() }
