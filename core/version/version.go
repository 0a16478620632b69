// Package version holds the DSPEx release: the one value that `dspex
// version` prints and that saved programs record in their metadata.
//
// The default is the release in the source tree; a build sets another
// with the linker (the Makefile's build passes the git tag, when there is
// one):
//
//	go build -ldflags "-X github.com/dspex/dspex/core/version.version=v1.2.3" ./cmd/dspex
package version

// version is unexported, and read through String, so that it is set only
// by the linker and never changed by a caller at run time.
var version = "0.1.0"

// String returns the DSPEx release, for example "0.1.0".
func String() string { return version }
