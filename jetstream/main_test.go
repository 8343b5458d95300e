package jetstream_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/robotlab/webhookd/jetstream/jstest"
)

// TestMain fails the package when a test leaves goroutines behind. A child
// process started by jstest.Cluster runs its cluster node instead.
func TestMain(m *testing.M) {
	jstest.RunNodeIfChild()
	goleak.VerifyTestMain(m)
}
