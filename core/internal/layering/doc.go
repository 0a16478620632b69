// Package layering has no code: its test keeps the import graph drawn in
// docs/architecture.md, so that a small package stays small (no provider
// SDK, OpenTelemetry or SQLite driver below the packages that need them)
// and no arrow points back up (core never imports bridge, plugins, sandbox
// or cmd).
package layering
