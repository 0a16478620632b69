package cli_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dspex/dspex/cmd/dspex/internal/cli"
)

// usageCase is one command line and the exit code docs/cli.md promises.
type usageCase struct {
	args []string
	code int
	want string // in stderr
}

// usageCases builds, for every runnable command of the tree, the usage
// errors it can have: an unknown flag, a flag value of the wrong type,
// its required flags left out, too many arguments, and too few.
func usageCases(t *testing.T) map[string]usageCase {
	t.Helper()
	cases := map[string]usageCase{
		"unknown command":               {[]string{"bogus"}, 2, `unknown command "bogus" for "dspex"`},
		"misspelt command":              {[]string{"serv"}, 2, `did you mean "serve"?`},
		"unknown subcommand":            {[]string{"traces", "bogus"}, 2, `unknown command "bogus" for "dspex traces"`},
		"misspelt subcommand":           {[]string{"traces", "lst"}, 2, `unknown command "lst" for "dspex traces"; did you mean "list"?`},
		"unknown cache subcommand":      {[]string{"cache", "stat"}, 2, `did you mean "stats"?`},
		"missing run id":                {[]string{"traces", "show"}, 2, "accepts 1 arg(s), received 0"},
		"run with both inputs":          {[]string{"run", "--program", "p.yaml", "--input", "{}", "--inputs", "x"}, 2, "give exactly one"},
		"bad duration":                  {[]string{"serve", "--program", "p.yaml", "--timeout", "soon"}, 2, "--timeout"},
		"root help":                     {nil, 0, ""},
		"group help":                    {[]string{"traces"}, 0, ""},
		"version":                       {[]string{"version"}, 0, ""},
		"help of a command":             {[]string{"run", "--help"}, 0, ""},
		"unknown flag before command":   {[]string{"--bogus", "run"}, 2, "unknown flag: --bogus"},
		"mock-lm bad fault (own check)": {[]string{"mock-lm", "--fault", "nonsense"}, 2, "fault"},
		"mock-lm zero finetune step":    {[]string{"mock-lm", "--finetune-step", "0s"}, 2, "--finetune-step 0s must be positive"},
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if !c.Runnable() || c.HasSubCommands() || c == c.Root() {
			return
		}
		path := strings.Fields(c.CommandPath())[1:]
		name := strings.Join(path, " ")
		if c.Args == nil {
			t.Errorf("%s declares no Args: extra arguments would run it", name)
			return
		}
		cases[name+": unknown flag"] = usageCase{append(append([]string{}, path...), "--no-such-flag"), 2, "unknown flag: --no-such-flag"}
		cases[name+": too many arguments"] = usageCase{append(append([]string{}, path...), "a", "b", "c"), 2, ""}
		var required []string
		var typed *pflag.Flag
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if _, ok := f.Annotations[cobra.BashCompOneRequiredFlag]; ok {
				required = append(required, f.Name)
			}
			if typed == nil && (f.Value.Type() == "int" || f.Value.Type() == "duration") {
				typed = f
			}
		})
		if len(required) > 0 {
			cases[name+": required flags left out"] = usageCase{path, 2, "required flag(s)"}
		}
		if typed != nil {
			cases[name+": bad --"+typed.Name] = usageCase{append(append([]string{}, path...), "--"+typed.Name, "many"), 2, "--" + typed.Name}
		}
	}
	walk(cli.NewRootCommand(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}))
	return cases
}

// Every command exits 2 on bad usage, as docs/cli.md promises, and says
// where to find the usage.
func TestExitCodes(t *testing.T) {
	cases := usageCases(t)
	if len(cases) < 40 {
		t.Fatalf("only %d cases: the command tree was not walked", len(cases))
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := cli.Main(c.args, strings.NewReader(""), &out, &errb)
			if code != c.code {
				t.Fatalf("dspex %s: exit %d, want %d; stderr:\n%s", strings.Join(c.args, " "), code, c.code, errb.String())
			}
			if !strings.Contains(errb.String(), c.want) {
				t.Errorf("stderr %q, want it to contain %q", errb.String(), c.want)
			}
			if c.code == 2 && !strings.Contains(errb.String(), "--help\" for usage") {
				t.Errorf("stderr %q does not point to --help", errb.String())
			}
			if c.code == 0 && c.args == nil && !strings.Contains(out.String(), "Usage:") {
				t.Errorf("bare dspex printed %q, want its help", out.String())
			}
		})
	}
}
