package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// A mistyped flag is one line with the nearest flag: no usage is printed.
func TestRunMistypedFlagIsOneLine(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), []string{"--allow-target", "127.0.0.0/8"}, noEnv, &out)
	require.EqualError(t, err, "unknown flag --allow-target; did you mean --allow-targets? (webhookd --help lists the flags)")
	require.Empty(t, out.String())

	err = run(context.Background(), []string{"--allow-targets", "127.0.0.1"}, noEnv, &out)
	require.ErrorContains(t, err, `"127.0.0.1" is an address, not a CIDR: write 127.0.0.1/32 for that address alone`)
	require.NotContains(t, err.Error(), "ParsePrefix")
	require.Empty(t, out.String())
}

// A listener's port already in use names the flag that moves it.
func TestRunNamesTheFlagOfAPortInUse(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	addr := taken.Addr().String()

	err = run(context.Background(), []string{"--data-dir", t.TempDir(), "--http-addr", freeAddr(t), "--nats-listen", addr}, noEnv, &bytes.Buffer{})
	require.ErrorContains(t, err, "address already in use")
	require.ErrorContains(t, err, "holds "+addr+": stop it, or give another address with --nats-listen")

	err = run(context.Background(), []string{"--data-dir", t.TempDir(), "--http-addr", addr, "--nats-listen", freeAddr(t)}, noEnv, &bytes.Buffer{})
	require.ErrorContains(t, err, "listen on http-addr "+addr)
	require.ErrorContains(t, err, "another process holds it: stop it, or give another address with --http-addr")
}

// --help lists the flags by topic, --version with the general ones, then
// the subcommand.
func TestRunHelpIsGroupedByTopic(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"--help"}, noEnv, &out))
	help := out.String()
	last := -1
	for _, topic := range []string{"Storage and memory:", "Robots: the embedded NATS server:", "External NATS cluster:", "Events:",
		"Deliveries:", "Queue and shutdown:", "Admin API and observability:", "General:", "Subcommands:"} {
		i := strings.Index(help, "\n"+topic+"\n")
		require.Greater(t, i, last, topic)
		last = i
	}
	general := help[strings.Index(help, "\nGeneral:\n"):strings.Index(help, "\nSubcommands:\n")]
	require.Contains(t, general, "  --version\n")
	require.Contains(t, general, "  --config\n")
	require.NotContains(t, help, "\nOther:\n")
}
