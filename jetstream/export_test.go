package jetstream

import "github.com/nats-io/nats-server/v2/server"

// Server returns the embedded server, so tests can inspect its connections
// and JetStream configuration.
func (c *Conn) Server() *server.Server { return c.server }

// ReconnectDelay exposes reconnectDelay to tests.
var ReconnectDelay = reconnectDelay

// RobotPublishDeny returns what robots may not publish to.
func RobotPublishDeny() []string { return robotPublishDeny }
