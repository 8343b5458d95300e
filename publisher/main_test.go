package publisher_test

import (
	"testing"

	"github.com/robotlab/webhookd/internal/daemontest"
)

// webhookdBin is the real daemon, built once for the end-to-end tests.
var webhookdBin string

// TestMain builds webhookd, runs the tests and fails the package when a test
// leaves goroutines behind.
func TestMain(m *testing.M) { daemontest.Main(m, &webhookdBin) }
