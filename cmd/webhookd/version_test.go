package main

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRunVersion(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--log-level", "nonsense", "--version"}, noEnv, &out))
	line := out.String()
	require.True(t, strings.HasPrefix(line, "webhookd "), line)
	require.Contains(t, line, "(revision ")
	require.True(t, strings.HasSuffix(line, " "+runtime.Version()+"\n"), line)
	require.Equal(t, 1, strings.Count(line, "\n"))

	out.Reset()
	require.NoError(t, run(context.Background(), []string{"--help"}, noEnv, &out))
	require.Contains(t, out.String(), "--version")
}

// A binary built from a checkout carries the commit it was built from.
func TestVersionOfABuiltBinaryNamesTheRevision(t *testing.T) {
	t.Parallel()
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout (git rev-parse HEAD: %v)", err)
	}
	bin := filepath.Join(t.TempDir(), "webhookd")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	out, err := exec.Command(bin, "--version").Output()
	require.NoError(t, err)
	require.Contains(t, string(out), "(revision "+strings.TrimSpace(string(head)))
	require.Contains(t, string(out), runtime.Version())
}

func TestRunSuggestsCompactForATypo(t *testing.T) {
	t.Parallel()
	for _, typo := range []string{"compcat", "compac", "Compact", "comapct"} {
		err := run(context.Background(), []string{typo}, noEnv, io.Discard)
		require.EqualError(t, err, `unknown command "`+typo+`"; did you mean "compact"?`)
	}
	err := run(context.Background(), []string{"frobnicate"}, noEnv, io.Discard)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "compact")
}
