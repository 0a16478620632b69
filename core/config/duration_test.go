package config

import (
	"strings"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || time.Duration(d) != 90*time.Second {
		t.Fatalf("UnmarshalText(1m30s) = %v, %v", time.Duration(d), err)
	}
	if b, _ := d.MarshalText(); string(b) != "1m30s" || d.String() != "1m30s" {
		t.Errorf("MarshalText = %q, String = %q, want 1m30s", b, d.String())
	}
	if err := d.UnmarshalText([]byte("90")); err == nil || !strings.Contains(err.Error(), `"90" is not a duration`) {
		t.Errorf("UnmarshalText(90) = %v, want an error naming the value", err)
	}
}
