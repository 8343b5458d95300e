// Package deploy holds the files that run webhookd in production (a
// systemd unit, a Kubernetes Deployment and Service, a Dockerfile) and the
// tests that check them: the static build they rely on works, and the
// files keep the properties the README promises.
package deploy

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
