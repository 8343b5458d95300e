// Package deploy holds the files that run and watch webhookd in production
// (a systemd unit, a Kubernetes Deployment and Service, a Dockerfile, a
// Grafana dashboard and Prometheus alert rules) and the tests that check
// them: the static build they rely on works, the files keep the properties
// the README promises, promtool accepts the rules and their unit tests
// pass, and every metric the dashboard and the rules name is served by a
// running webhookd.
package deploy

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
