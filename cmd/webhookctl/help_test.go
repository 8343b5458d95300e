package main

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

func TestEveryCommandHasExamples(t *testing.T) {
	t.Parallel()
	a := &app{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" {
			return
		}
		require.NotEmpty(t, c.Example, "%q has no examples in --help", c.CommandPath())
		require.NotEmpty(t, c.Short, c.CommandPath())
		n++
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(a.rootCommand())
	require.GreaterOrEqual(t, n, 18)
}

func TestHelpExitsZero(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	code := run([]string{"deliveries", "replay", "--help"}, func(string) string { return "" }, &out, io.Discard)
	require.Equal(t, 0, code)
	require.Contains(t, out.String(), "--dry-run")
	require.Contains(t, out.String(), "--rate")
}
