package jetstream

import (
	"context"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Server returns the embedded server, so tests can inspect its connections
// and JetStream configuration.
func (c *Conn) Server() *server.Server { return c.server }

// ReconnectDelay exposes reconnectDelay to tests.
var ReconnectDelay = reconnectDelay

// CopyStream exposes copyStream to tests: it copies stream from into
// stream to, each copy on subject prefix+its subject.
func CopyStream(ctx context.Context, js natsjs.JetStream, from, to, prefix string) error {
	src, err := js.Stream(ctx, from)
	if err != nil {
		return err
	}
	dst, err := js.Stream(ctx, to)
	if err != nil {
		return err
	}
	return copyStream(ctx, js, src, dst, func(m *natsjs.RawStreamMsg, out *nats.Msg) { out.Subject = prefix + m.Subject })
}

// MigrationHold is the name of the holding stream of the EVENTS migration.
const MigrationHold = migrateHold

// RobotPublishDeny returns what robots may not publish to.
func RobotPublishDeny() []string { return robotPublishDeny }

// NewPenalties returns the login throttle with a clock and sleep of the
// test's own.
func NewPenalties(delay time.Duration, now func() time.Time, sleep func(time.Duration)) *Penalties {
	p := newPenalties(delay)
	p.now, p.sleep = now, sleep
	return p
}

// Penalties is the login throttle.
type Penalties = penalties

// Wait and Fail expose wait and fail.
func (p *penalties) Wait(host string) bool { return p.wait(host) }
func (p *penalties) Fail(host string)      { p.fail(host) }

// MaxPenalized is how many addresses the throttle tracks one by one.
const MaxPenalized = maxPenalized
