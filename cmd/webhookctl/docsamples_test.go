package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// docCommands returns the command lines of the fenced blocks of the README
// and docs/ that start with prog (or bin/prog): in console blocks the lines
// after "$ ", in sh blocks every line; trailing comments, pipes and stdin
// redirections removed.
func docCommands(t *testing.T, prog string) map[string][]string {
	t.Helper()
	files, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	files = append(files, "../../README.md")
	fence := regexp.MustCompile("(?s)```(console|sh)\n(.*?)```")
	out := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range fence.FindAllStringSubmatch(string(b), -1) {
			for _, l := range strings.Split(m[2], "\n") {
				if m[1] == "console" {
					var ok bool
					if l, ok = strings.CutPrefix(l, "$ "); !ok {
						continue
					}
				}
				l = strings.TrimPrefix(strings.TrimSpace(l), "bin/")
				if !strings.HasPrefix(l, prog+" ") {
					continue
				}
				if i := strings.Index(l, "  #"); i >= 0 {
					l = l[:i]
				}
				if i := strings.Index(l, " | "); i >= 0 {
					l = l[:i]
				}
				if i := strings.Index(l, " < "); i >= 0 { // stdin redirected from a file
					l = l[:i]
				}
				out[filepath.Base(f)] = append(out[filepath.Base(f)], strings.TrimSpace(l))
			}
		}
	}
	return out
}

// shellWords splits a command line as sh would, for the quoting the docs
// use: single and double quotes, no escapes.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	require.Zero(t, quote, "unbalanced quotes in %q", line)
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// Every webhookctl command shown in the README and docs/ is one the real
// command tree accepts: the command exists, its flags exist and parse, and
// it has the arguments it needs.
func TestDocSamplesAreValidCommands(t *testing.T) {
	t.Parallel()
	n := 0
	for file, lines := range docCommands(t, "webhookctl") {
		for _, l := range lines {
			n++
			a := &app{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}
			root := a.rootCommand()
			cmd, rest, err := root.Find(shellWords(t, l)[1:])
			require.NoError(t, err, "%s: %s", file, l)
			require.False(t, cmd.HasSubCommands(), "%s: %s names a command group", file, l)
			require.NoError(t, cmd.ParseFlags(rest), "%s: %s", file, l)
			require.NoError(t, cmd.ValidateArgs(cmd.Flags().Args()), "%s: %s", file, l)
		}
	}
	require.GreaterOrEqual(t, n, 15, "samples found")
}

// No table in the docs shows a time as the CLI never prints it: tables
// print RFC 3339 in UTC, ending in Z.
func TestDocSamplesShowTimesAsTheCLIPrintsThem(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	files = append(files, "../../README.md")
	spaced := regexp.MustCompile(`\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?\b`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.Empty(t, spaced.FindAllString(string(b), -1), "%s: times as the CLI prints them, 2026-11-29T14:12:06Z", f)
	}
}
