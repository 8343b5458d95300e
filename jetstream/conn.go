package jetstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// Options says which NATS to use.
type Options struct {
	// URL of external servers (comma-separated, every node of a cluster).
	// Empty starts an embedded server.
	URL string
	// StoreDir is the embedded server's JetStream directory (<data-dir>/jetstream).
	StoreDir string
	// Listen is the embedded server's client address, e.g. "127.0.0.1:4222".
	// Port -1 picks a free port (tests).
	Listen string
	// Name is the client connection name shown by the server.
	Name string
	// ConnectTimeout bounds the first connection to an external server.
	ConnectTimeout time.Duration
	// Client authenticates to and secures an external server (URL set).
	Client Client

	// The fields below apply to the embedded server only.

	// UsersFile names the robots that may connect with credentials: YAML or
	// JSON, a "users" list of {user, password} (plaintext or bcrypt) or
	// {nkey} (a user public key) entries. Giving one turns anonymous robots
	// off unless AllowAnonymous is set.
	UsersFile string
	// AllowAnonymous accepts robots without credentials. Without a users
	// file they are accepted anyway on a loopback listener; a non-loopback
	// listener without a users file is refused unless this is set.
	AllowAnonymous bool
	// SyncAlways makes the file store fsync after every write: nothing
	// acknowledged is lost when the machine crashes, at a throughput cost.
	SyncAlways bool
	// SyncInterval is how often the file store fsyncs when SyncAlways is
	// off; 0 keeps the NATS default (2 minutes).
	SyncInterval time.Duration
	// MaxPayload is the largest message the server accepts, in bytes; 0
	// keeps the NATS default (1 MiB).
	MaxPayload int32
	// MaxConnections caps the server's client connections, webhookd's own
	// included; 0 keeps the NATS default (65536).
	MaxConnections int
	// MaxRobotConnections caps the connections of each named robot, and of
	// all anonymous robots together (they share an account); 0: no cap.
	MaxRobotConnections int
	// MaxRobotSubscriptions caps the subscriptions of each robot
	// connection; 0: no cap. webhookd's own connection has none.
	MaxRobotSubscriptions int
	// MaxPending caps the bytes the server buffers for one connection that
	// does not read (it is then closed as a slow consumer); 0 keeps the
	// NATS default (64 MiB). It applies to webhookd's own connection too.
	MaxPending int64
	// AuthFailureDelay spaces the authentication attempts of an address
	// that failed one: at most one is checked per delay; 0: none.
	AuthFailureDelay time.Duration
	// StoreMinFree is the free space, in bytes, the store's filesystem must
	// keep for the store to accept writes (see StoreGuard); 0 means
	// DefaultStoreMinFree.
	StoreMinFree int64
	// StoreCheckInterval is how often the StoreGuard looks; 0 means 1s.
	StoreCheckInterval time.Duration
}

// Conn is an open NATS connection with its JetStream context, and the
// embedded server when there is one.
type Conn struct {
	NC *nats.Conn
	JS natsjs.JetStream

	server *server.Server
	guard  *StoreGuard
	closed chan struct{}
}

// ErrUnavailable is returned by Open when NATS cannot be reached or started.
var ErrUnavailable = errors.New("jetstream: NATS unavailable")

// Open connects to the external servers in o.URL, or starts an embedded
// server with JetStream and connects to it in-process. It returns an error
// wrapping ErrUnavailable when the server cannot be reached or started (for
// example when the embedded server's port is in use).
//
// The embedded server is closed by default: robots (anonymous, or named in
// o.UsersFile) may only publish to events.> (not events.webhook.>) and
// receive their acks on _INBOX.> (each named robot in an account of its own,
// so no robot sees another's acks; anonymous robots share one account);
// webhookd's own connection is in-process,
// with a random password that lives only in this process, and uses
// InboxPrefix. Open refuses a non-loopback o.Listen without o.UsersFile
// unless o.AllowAnonymous says anonymous robots are wanted there, and returns
// a one-line error for a users file it cannot read or with a bad entry.
func Open(ctx context.Context, o Options, log zerolog.Logger) (*Conn, error) {
	if o.Name == "" {
		o.Name = "webhookd"
	}
	if o.URL != "" {
		return dial(ctx, o, log)
	}
	ns, a, err := startEmbedded(o, log)
	if err != nil {
		return nil, err
	}
	closed := make(chan struct{})
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name(o.Name), nats.MaxReconnects(-1),
		nats.UserInfo(internalUser, a.password), nats.CustomInboxPrefix(InboxPrefix),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }), nats.ErrorHandler(asyncErrors(log)))
	if err != nil {
		ns.Shutdown()
		return nil, fmt.Errorf("%w: in-process connection: %w", ErrUnavailable, err)
	}
	js, err := natsjs.New(nc)
	if err != nil {
		nc.Close()
		ns.Shutdown()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Conn{NC: nc, JS: js, server: ns, guard: newStoreGuard(ns, o, log), closed: closed}, nil
}

func dial(ctx context.Context, o Options, log zerolog.Logger) (*Conn, error) {
	timeout := o.ConnectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	client, err := o.Client.options()
	if err != nil {
		return nil, err
	}
	closed := make(chan struct{})
	nc, err := nats.Connect(o.URL, append(client,
		nats.Name(o.Name),
		nats.CustomInboxPrefix(InboxPrefix),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.Timeout(timeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn().Err(err).Msg("nats disconnected; reconnecting")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Str("server", nc.ConnectedServerName()).Msg("nats reconnected")
		}),
		nats.ErrorHandler(asyncErrors(log)),
	)...)
	if err != nil {
		return nil, fmt.Errorf("%w: connect %s: %w", ErrUnavailable, redact(o.URL), err)
	}
	log.Info().Str("url", nc.ConnectedUrlRedacted()).Str("server", nc.ConnectedServerName()).
		Str("name", o.Name).Msg("nats connected")
	js, err := natsjs.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Conn{NC: nc, JS: js, closed: closed}, nil
}

// redact drops credentials from URLs before they are logged or returned.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				parts[i] = p[:scheme+3] + "***" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// startEmbedded starts the embedded server and returns it with the auth
// webhookd's own connection needs.
func startEmbedded(o Options, log zerolog.Logger) (*server.Server, *auth, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: listen address %q: %w", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: listen port %q: %w", portStr, err)
	}
	if o.StoreDir == "" {
		return nil, nil, errors.New("jetstream: embedded server needs a store directory")
	}
	if o.MaxPayload < 0 {
		return nil, nil, fmt.Errorf("jetstream: max payload %d: want 0 (NATS default) or a positive size", o.MaxPayload)
	}
	if o.MaxConnections < 0 || o.MaxRobotConnections < 0 || o.MaxRobotSubscriptions < 0 || o.MaxPending < 0 || o.AuthFailureDelay < 0 {
		return nil, nil, errors.New("jetstream: connection limits and the authentication failure delay must not be negative")
	}
	if o.StoreMinFree < 0 {
		return nil, nil, fmt.Errorf("jetstream: store minimum free space %d: want 0 (default) or a positive size", o.StoreMinFree)
	}
	if o.SyncInterval < 0 {
		return nil, nil, fmt.Errorf("jetstream: sync interval %s: want 0 (NATS default) or a positive duration", o.SyncInterval)
	}
	a, err := newAuth(o)
	if err != nil {
		return nil, nil, err
	}
	if port > 0 {
		// Fail fast and clearly: a busy port leaves the server never ready.
		ln, err := net.Listen("tcp", o.Listen)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: embedded server cannot listen on %s: %w", ErrUnavailable, o.Listen, err)
		}
		_ = ln.Close()
	}
	authn := a.authenticator(o.AuthFailureDelay, log)
	ns, err := server.NewServer(&server.Options{
		ServerName:   "webhookd",
		JetStream:    true,
		StoreDir:     o.StoreDir,
		SyncAlways:   o.SyncAlways,
		SyncInterval: o.SyncInterval,
		MaxPayload:   o.MaxPayload,
		Host:         host,
		Port:         port,
		NoSigs:       true,
		Accounts:     a.accounts,
		// Our authenticator knows the users; the server sends a nonce for
		// NKey robots to sign, as it does when it knows them itself.
		CustomClientAuthentication: authn,
		AlwaysEnableNonce:          true,
		MaxConn:                    o.MaxConnections,
		MaxPending:                 o.MaxPending,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("jetstream: embedded server: %w", err)
	}
	if err := authn.bind(ns); err != nil {
		return nil, nil, err
	}
	// Our own logger: the built-in one exits the process on a busy port.
	ns.SetLoggerV2(serverLogger{log.With().Str("component", "nats-server").Logger()}, false, false, false)
	ns.Start()
	// With a second account configured the server enables JetStream only for
	// accounts that ask for it; the global account keeps the streams (and
	// the store layout, <store>/$G) it always had.
	if err := ns.GlobalAccount().EnableJetStream(nil, nil); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, nil, fmt.Errorf("%w: enable JetStream: %w", ErrUnavailable, err)
	}
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, nil, fmt.Errorf("%w: embedded server not ready on %s (port in use?)", ErrUnavailable, o.Listen)
	}
	log.Info().Str("listen", ns.ClientURL()).Str("store_dir", o.StoreDir).
		Bool("anonymous_robots", a.noAuthUser != "").Int("robot_users", a.named).
		Msg("embedded nats-server started")
	return ns, a, nil
}

// StoreGuard returns the guard of the embedded server's store, to run and
// to ask whether the store can write; nil for an external NATS.
func (c *Conn) StoreGuard() *StoreGuard { return c.guard }

// StoreDir returns the embedded server's JetStream directory under dataDir.
func StoreDir(dataDir string) string { return filepath.Join(dataDir, "jetstream") }

// ClientURL is the URL robots use to reach the embedded server, or "" when
// connected to an external one.
func (c *Conn) ClientURL() string {
	if c.server == nil {
		return ""
	}
	return c.server.ClientURL()
}

// Close drains the connection and shuts the embedded server down, if any.
func (c *Conn) Close() {
	// Drain is asynchronous; wait for it so the server sees the last acks.
	if err := c.NC.Drain(); err == nil {
		select {
		case <-c.closed:
		case <-time.After(5 * time.Second):
		}
	}
	c.NC.Close()
	if c.server != nil {
		c.server.Shutdown()
		c.server.WaitForShutdown()
	}
}

// serverLogger sends the embedded server's log to zerolog. Fatalf logs at
// error level and does not exit.
type serverLogger struct{ log zerolog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }
func (l serverLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }

// Check reports why this replica cannot work now, or nil: the connection
// must be up and the streams, the shared consumers and the buckets (the
// subscriptions, the console's revoked sessions) must exist (they can be missing on a server that lost its store,
// or unreachable while a cluster has no leader for them). It asks the
// server, bounded by ctx.
func (c *Conn) Check(ctx context.Context) error {
	if !c.NC.IsConnected() {
		return fmt.Errorf("nats %s", strings.ToLower(c.NC.Status().String()))
	}
	for _, name := range []string{StreamEvents, StreamDeliveries, StreamAudit, "KV_" + BucketSubscriptions, "KV_" + BucketRevokedSessions, "KV_" + BucketTeamTokens} {
		if _, err := c.JS.Stream(ctx, name); err != nil {
			return fmt.Errorf("nats stream %s: %w", name, err)
		}
	}
	for stream, consumer := range map[string]string{StreamEvents: ConsumerRouter, StreamDeliveries: ConsumerWorkers} {
		if _, err := c.JS.Consumer(ctx, stream, consumer); err != nil {
			return fmt.Errorf("nats consumer %s/%s: %w", stream, consumer, err)
		}
	}
	return nil
}

// asyncErrors logs the connection's asynchronous errors, such as a slow
// consumer: a subscription that dropped messages because its buffer was
// full (a dropped job waits for its AckWait).
func asyncErrors(log zerolog.Logger) nats.ErrHandler {
	return func(_ *nats.Conn, sub *nats.Subscription, err error) {
		ev := log.Warn().Err(err)
		if sub != nil {
			ev = ev.Str("subject", sub.Subject)
		}
		ev.Msg("nats asynchronous error")
	}
}
