package publisher_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/robotlab/webhookd/internal/daemontest"
)

// webhookdBin is the real daemon, built once for the end-to-end tests.
var webhookdBin string

// TestMain builds webhookd, runs the tests and fails the package when a test
// leaves goroutines behind.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "publisher-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	webhookdBin, err = daemontest.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}
