package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/dspex/dspex/core/cache"
)

func newCacheCommand(s *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Inspect or clear the on-disk LM response cache",
		Long: `The LM response cache is an SQLite file shared by every dspex process on the
machine (see docs/cache.md). These commands work on the file directly, so they
see entries written by any process. --path defaults to the file dspex uses
when a program does not name one.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newCacheStatsCommand(s), newCacheClearCommand(s))
	return cmd
}

// cacheReport is what `dspex cache stats --json` prints.
type cacheReport struct {
	Path          string `json:"path"`
	Exists        bool   `json:"exists"`
	Entries       int64  `json:"entries"`
	Bytes         int64  `json:"bytes"`
	FileBytes     int64  `json:"file_bytes"`
	SchemaVersion int    `json:"schema_version"`
	Healthy       bool   `json:"healthy"`
	Problem       string `json:"problem,omitempty"`
}

func newCacheStatsCommand(s *streams) *cobra.Command {
	var (
		path   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "stats [--path FILE] [--json]",
		Short: "Show the cache file's entries, size, schema version and health",
		Long: `stats prints the cache file's path, how many entries it holds and their size
(keys plus values), the size of the file itself, its schema version, and
whether SQLite's integrity check passes. With --json it prints one JSON object
instead.

A missing file is reported as "no cache at PATH" (exit status 0). A file that
is not a usable cache (not a database, damaged, written by a newer dspex)
exits with status 1.`,
		Example: `  dspex cache stats
  dspex cache stats --path ./lm-cache.db --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCacheStats(cmd.Context(), s, path, asJSON)
		},
	}
	cmd.Flags().StringVar(&path, "path", "", "cache file (default: the user cache directory's dspex/lm-cache.db)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

func newCacheClearCommand(s *streams) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "clear [--path FILE]",
		Short: "Delete every entry from the cache file",
		Long: `clear deletes every entry from the cache file, for every process sharing it,
and prints how many it deleted. The file stays, as a valid empty cache.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCacheClear(cmd.Context(), s, path)
		},
	}
	cmd.Flags().StringVar(&path, "path", "", "cache file (default: the user cache directory's dspex/lm-cache.db)")
	return cmd
}

// openCacheFile opens an existing cache file for inspection: no memory tier
// and no size limit, so looking never evicts. It returns a nil cache and no
// error when there is no file at path.
func openCacheFile(ctx context.Context, path string) (string, *cache.Cache, error) {
	if path == "" {
		var err error
		if path, err = cache.DefaultPath(); err != nil {
			return "", nil, err
		}
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return path, nil, nil
	}
	c, err := cache.Open(ctx, cache.Options{Path: path, MemoryEntries: -1, MaxDiskBytes: -1})
	if err != nil {
		// Open's error ends "using memory only", which means nothing to a
		// tool that only looks at the file: report the reason alone.
		why := err.Error()
		if st, serr := c.Stats(ctx); serr == nil && st.DiskError != "" {
			why = st.DiskError
		}
		c.Close()
		return path, nil, &ExitError{Code: 1, Err: fmt.Errorf("unusable cache file %s", why)}
	}
	return path, c, nil
}

func runCacheStats(ctx context.Context, s *streams, path string, asJSON bool) error {
	path, c, err := openCacheFile(ctx, path)
	r := cacheReport{Path: path}
	if c == nil && err == nil {
		if asJSON {
			return writeJSON(s, r)
		}
		_, err := fmt.Fprintf(s.out, "no cache at %s\n", path)
		return err
	}
	if err != nil {
		r.Exists = true
		r.Problem = err.Error()
		if asJSON {
			if werr := writeJSON(s, r); werr != nil {
				return werr
			}
		}
		return err
	}
	defer c.Close()
	st, err := c.Stats(ctx)
	if err != nil {
		return err
	}
	r = cacheReport{
		Path: path, Exists: true,
		Entries: st.DiskEntries, Bytes: st.DiskBytes, FileBytes: st.FileBytes,
		SchemaVersion: st.SchemaVersion, Healthy: true,
	}
	checkErr := c.Check(ctx)
	if checkErr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.Healthy, r.Problem = false, checkErr.Error()
	}
	if asJSON {
		err = writeJSON(s, r)
	} else {
		health := "ok"
		if !r.Healthy {
			health = "damaged (details on standard error)"
		}
		_, err = fmt.Fprintf(s.out, "path:    %s\nentries: %s, %s\nfile:    %s\nschema:  version %d\nhealth:  %s\n",
			r.Path, countNoun(r.Entries, "entry", "entries"), humanBytes(r.Bytes), humanBytes(r.FileBytes), r.SchemaVersion, health)
	}
	if err != nil {
		return err
	}
	if checkErr != nil {
		return &ExitError{Code: 1, Err: checkErr}
	}
	return nil
}

func runCacheClear(ctx context.Context, s *streams, path string) error {
	path, c, err := openCacheFile(ctx, path)
	if err != nil {
		return err
	}
	if c == nil {
		_, err := fmt.Fprintf(s.out, "no cache at %s\n", path)
		return err
	}
	defer c.Close()
	// Counted first: other processes may add entries in between, which
	// Clear removes too, so the figure can be a little low.
	st, err := c.Stats(ctx)
	if err != nil {
		return err
	}
	if err := c.Clear(ctx); err != nil {
		return err
	}
	if st, err := c.Stats(ctx); err == nil && st.DiskError != "" {
		return &ExitError{Code: 1, Err: fmt.Errorf("clear %s: %s", path, st.DiskError)}
	}
	_, err = fmt.Fprintf(s.out, "cleared %s (%s) from %s\n", countNoun(st.DiskEntries, "entry", "entries"), humanBytes(st.DiskBytes), path)
	return err
}

// writeJSON writes v as one line of JSON, without escaping <, > and &
// (signatures hold "->").
func writeJSON(s *streams, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := s.out.Write(b.Bytes())
	return err
}

// countNoun writes n with thousands separators and the noun in the right
// number: "1 entry", "1,234 entries".
func countNoun(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return groupThousands(n) + " " + many
}

func groupThousands(n int64) string {
	digits := strconv.FormatInt(n, 10)
	sign := ""
	if n < 0 {
		sign, digits = "-", digits[1:]
	}
	out := make([]byte, 0, len(digits)+len(digits)/3)
	for i := range len(digits) {
		if i > 0 && (len(digits)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, digits[i])
	}
	return sign + string(out)
}

// humanBytes writes a size in binary units with one decimal: "512 B",
// "5.6 MiB".
func humanBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}
