package main

import (
	"io"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// A mistyped flag gets the nearest flags of that command, global ones
// included, in one line; a far-off one gets a pointer to --help.
func TestFlagTyposGetSuggestions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"subscriptions", "list", "--sever", "x"}, `webhookctl: unknown flag --sever for "webhookctl subscriptions list"; did you mean --server?` + "\n"},
		{[]string{"subscriptions", "create", "--evnts", "task.*"}, `webhookctl: unknown flag --evnts for "webhookctl subscriptions create"; did you mean --events?` + "\n"},
		{[]string{"deliveries", "list", "--stauts", "failed"}, `webhookctl: unknown flag --stauts for "webhookctl deliveries list"; did you mean --status?` + "\n"},
		{[]string{"deliveries", "replay", "--dry"}, `webhookctl: unknown flag --dry for "webhookctl deliveries replay"; did you mean --dry-run?` + "\n"},
		{[]string{"status", "--frobnicate"}, `webhookctl: unknown flag --frobnicate for "webhookctl status" (webhookctl status --help lists its flags)` + "\n"},
		{[]string{"deliveries", "list", "--since"}, `webhookctl: flag needs an argument: --since (webhookctl deliveries list --help lists its flags)` + "\n"},
	} {
		var out, errOut strings.Builder
		code := run(tc.args, func(string) string { return "" }, &out, &errOut)
		require.Equal(t, 1, code, tc.args)
		require.Equal(t, tc.want, errOut.String(), tc.args)
		require.Empty(t, out.String(), "%v: no usage", tc.args)
	}
}

// docs/cli.md names every command of webhookctl: each leaf command's name
// appears on a line with its group's name.
func TestCLIDocNamesEveryCommand(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/cli.md")
	require.NoError(t, err)
	lines := strings.Split(string(b), "\n")
	a := &app{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}
	n, missing := 0, []string(nil)
	var walk func(group string, c *cobra.Command)
	walk = func(group string, c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" || c.Hidden {
			return
		}
		if !c.HasSubCommands() {
			n++
			found := false
			for _, l := range lines {
				path := strings.TrimSpace(group + " " + c.Name())
				if strings.Contains(l, "`"+path) || strings.Contains(l, "webhookctl "+path+" ") ||
					group != "" && strings.Contains(l, "`"+group+" ") && strings.Contains(l, "`"+c.Name()+" ") {
					found = true
					break
				}
			}
			if !found {
				missing = append(missing, c.CommandPath())
			}
			return
		}
		for _, sub := range c.Commands() {
			if c.HasParent() {
				walk(c.Name(), sub)
			} else {
				walk("", sub)
			}
		}
	}
	walk("", a.rootCommand())
	require.Empty(t, missing, "docs/cli.md does not name these commands")
	require.GreaterOrEqual(t, n, 15)
}
