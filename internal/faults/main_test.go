package faults

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/robotlab/webhookd/internal/daemontest"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// enableEnv turns the suite on: it is slow (minutes) and starts real
// processes, so `make test` leaves it alone and `make faults` sets it.
const enableEnv = "WEBHOOKD_FAULTS"

// webhookdBin is the real webhookd, built once in TestMain.
var webhookdBin string

// TestMain runs a cluster node when jstest.Cluster started this binary as
// one; otherwise it builds webhookd (only when the suite is on) and runs
// the tests.
func TestMain(m *testing.M) {
	jstest.RunNodeIfChild()
	if os.Getenv(enableEnv) == "" {
		os.Exit(m.Run()) // TestFaults says how to turn it on
	}
	dir, err := os.MkdirTemp("", "webhookd-faults")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if webhookdBin, err = daemontest.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	daemontest.Run(m, dir,
		// The net/http transport's idle connections close asynchronously.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
