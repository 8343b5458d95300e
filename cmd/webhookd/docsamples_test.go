package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/config"
)

// Every webhookd command line shown in the README and docs/ (sh blocks, and
// console blocks after "$ ", continuation lines joined) is one webhookd
// accepts: its flags exist and its values pass the configuration's checks.
func TestDocSamplesAreValidConfigurations(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	files = append(files, "../../README.md")
	fence := regexp.MustCompile("(?s)```(console|sh)\n(.*?)```")
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range fence.FindAllStringSubmatch(string(b), -1) {
			block := strings.ReplaceAll(m[2], "\\\n", " ")
			for _, l := range strings.Split(block, "\n") {
				if m[1] == "console" {
					var ok bool
					if l, ok = strings.CutPrefix(l, "$ "); !ok {
						continue
					}
				}
				if i := strings.Index(l, "  #"); i >= 0 {
					l = l[:i]
				}
				args := strings.Fields(l) // the samples quote no webhookd value
				if len(args) == 0 || args[0] != "webhookd" && args[0] != "bin/webhookd" {
					continue
				}
				n++
				if len(args) > 1 && args[1] == "compact" {
					require.Equal(t, "--data-dir", args[2], "%s: %s", f, l)
					require.Len(t, args, 4, "%s: %s", f, l)
					continue
				}
				_, err := config.Load(args[1:], noEnv, io.Discard)
				require.NoError(t, err, "%s: %s", f, l)
			}
		}
	}
	require.GreaterOrEqual(t, n, 4, "samples found")
}
