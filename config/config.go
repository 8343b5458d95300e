package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/robotlab/webhookd/internal/suggest"
)

// Config is everything webhookd can be told. Each field's key is its flag
// name; the same key is used in the YAML file and, as WEBHOOKD_<KEY>, in the
// environment.
type Config struct {
	// DataDir (data-dir) holds the bbolt file and the embedded server's store.
	DataDir string
	// NATSURL (nats-url) is an external NATS server or cluster; empty runs the
	// embedded server.
	NATSURL string
	// NATSCreds (nats-creds) is a NATS credentials file (user JWT and NKey
	// seed) for the connection to an external NATS.
	NATSCreds string
	// NATSNKeySeed (nats-nkey-seed) is a file holding a user NKey seed (SU…)
	// for the connection to an external NATS.
	NATSNKeySeed string
	// NATSUser (nats-user) and NATSPassword (nats-password, or the file
	// NATSPasswordFile, nats-password-file) authenticate to an external NATS.
	NATSUser         string
	NATSPassword     string
	NATSPasswordFile string
	// NATSToken (nats-token, or the file NATSTokenFile, nats-token-file)
	// authenticates to an external NATS with a token.
	NATSToken     string
	NATSTokenFile string
	// NATSTLSCA (nats-tls-ca) is a PEM file of the CAs that sign the external
	// NATS servers' certificates; NATSTLSCert and NATSTLSKey (nats-tls-cert,
	// nats-tls-key) are an optional client certificate and its key.
	NATSTLSCA   string
	NATSTLSCert string
	NATSTLSKey  string
	// StreamReplicas (stream-replicas) is how many NATS servers hold a copy
	// of each stream and of the subscription bucket: 1, or 3 (up to 5) on a
	// cluster. Changing it updates the existing streams.
	StreamReplicas int
	// NATSListen (nats-listen) is the embedded server's client address.
	NATSListen string
	// NATSUsersFile (nats-users-file) lists the robots that may connect to
	// the embedded server with a password or an NKey (YAML or JSON).
	NATSUsersFile string
	// NATSAllowAnonymous (nats-allow-anonymous) accepts robots without
	// credentials on the embedded server even on a non-loopback listener or
	// with a users file.
	NATSAllowAnonymous bool
	// NATSMaxConnections (nats-max-connections) caps the embedded server's
	// client connections, webhookd's own included.
	NATSMaxConnections int
	// NATSMaxRobotConnections (nats-max-robot-connections) caps the
	// connections of each named robot, and of all anonymous robots together.
	NATSMaxRobotConnections int
	// NATSMaxRobotSubscriptions (nats-max-robot-subscriptions) caps the
	// subscriptions of each robot connection.
	NATSMaxRobotSubscriptions int
	// NATSMaxPending (nats-max-pending) caps the bytes the embedded server
	// buffers for one connection that does not read; it is then closed.
	NATSMaxPending int64
	// NATSAuthFailureDelay (nats-auth-failure-delay) spaces the attempts of
	// an address that failed to authenticate to the embedded server; 0: off.
	NATSAuthFailureDelay time.Duration
	// StoreSync (store-sync) is how often the embedded server's file store
	// fsyncs: after every write, or at an interval.
	StoreSync StoreSync
	// HTTPAddr (http-addr) is where the admin API, /healthz and /readyz listen.
	HTTPAddr string
	// AdminToken (admin-token) is the bearer token of the admin API.
	AdminToken string
	// HTTPReadTimeout (http-read-timeout) is how long a request, its body
	// included, may take to arrive on every HTTP listener (the admin API
	// and console, pprof); its headers get at most 10 s of it.
	HTTPReadTimeout time.Duration
	// ConsoleSessionTTL (console-session-ttl) is how long a console login
	// lasts; a logout ends it sooner, on every replica.
	ConsoleSessionTTL time.Duration
	// ListenGrace (listen-grace) is how long the ephemeral subscription of
	// a `webhookctl listen` outlives its last stream; the replicas sweep
	// every quarter of it.
	ListenGrace time.Duration
	// ListenBuffer (listen-buffer) is how many deliveries a listener's
	// stream holds while its client is slow; beyond it they are dropped
	// and the listener told how many.
	ListenBuffer int
	// HTTPPublicPerClient (http-public-per-client) caps the requests one
	// client address may have in flight on the paths that need no
	// credential (/ui/login, /healthz, /readyz, /metrics, ...).
	HTTPPublicPerClient int
	// DeliveryTimeout (delivery-timeout) bounds one HTTP attempt unless the
	// subscription sets its own.
	DeliveryTimeout time.Duration
	// RetryBackoff (retry-backoff) is the default retry schedule.
	RetryBackoff Backoff
	// AllowTargets (allow-targets) are CIDRs that deliveries may reach despite
	// the internal-address guard.
	AllowTargets []netip.Prefix
	// LogLevel (log-level) is a zerolog level: debug, info, warn, error.
	LogLevel string
	// LogFormat (log-format) is json or console.
	LogFormat string
	// Workers (workers) is the number of concurrent delivery attempts per replica.
	Workers int
	// ShutdownTimeout (shutdown-timeout) bounds how long in-flight attempts
	// may run after a stop signal.
	ShutdownTimeout time.Duration
	// AckWait (ack-wait) is how long JetStream waits before redelivering a
	// job whose worker went silent (crashed); live attempts extend it.
	AckWait time.Duration
	// MaxAckPending (max-ack-pending) is the number of unsettled jobs,
	// waiting retries included, that all replicas together may hold.
	MaxAckPending int
	// Retention (retention) is how long delivery history is kept.
	Retention time.Duration
	// History (history) indexes AUDIT in this replica's bbolt file and
	// serves the index to replicas without one. With false the replica
	// keeps no index and asks an indexing replica over NATS.
	History bool
	// EventTypes (event-types) are accepted in addition to the built-in catalog.
	EventTypes []string
	// EventSchemas (event-schemas) is a directory of JSON Schemas, one
	// DIR/<type>.json per event type: events whose data fails theirs are
	// rejected, and each file adds its type to the catalog. Empty: none.
	EventSchemas string
	// SecretGrace (secret-grace) is how long a rotated-out secret keeps
	// signing deliveries.
	SecretGrace time.Duration
	// MaxEventSize (max-event-size) is the largest event data accepted, in
	// bytes, over NATS and over HTTP alike.
	MaxEventSize int64
	// EventRetention (event-retention) keeps the payload of a routed event
	// this long; 0 purges it as soon as it is routed.
	EventRetention time.Duration
	// EventRetentionBytes (event-retention-bytes) caps what routed events
	// keep: above it the oldest are purged first. See RetainedEventBytes.
	EventRetentionBytes int64
	// DedupWindow (dedup-window) is how long the streams remember a
	// message id: a robot's retry within it is not stored twice.
	DedupWindow time.Duration
	// MemoryLimit (memory-limit) is the Go heap's soft limit in bytes; 0
	// sets none. The GOMEMLIMIT environment variable wins when set.
	MemoryLimit int64
	// MaxStore (max-store) caps the bytes the streams may hold: a quarter
	// for EVENTS, a quarter for DELIVERIES, an eighth for ORDERED, three
	// eighths for AUDIT. 0: no cap.
	MaxStore int64
	// StoreMinFree (store-min-free) is the free space the embedded server's
	// filesystem must keep: below it, new events are refused (promptly)
	// until space returns.
	StoreMinFree int64
	// MaxInFlight (max-in-flight) is the default number of attempts in
	// flight per subscription and replica.
	MaxInFlight int
	// BreakerFailures (breaker-failures) is how many failures in a row open
	// a subscription's circuit breaker.
	BreakerFailures int
	// BreakerCooldown (breaker-cooldown) is how long an open breaker holds
	// jobs back before one probe attempt.
	BreakerCooldown time.Duration
	// DisableAfter (disable-after) disables a subscription that has failed
	// without a single success for this long; 0 never does.
	DisableAfter time.Duration
	// SecretKeyFile (secret-key-file) names a file holding the base64 32-byte
	// key that encrypts subscription secrets at rest (AES-256-GCM). Empty, and
	// without SecretKey, secrets are stored in plaintext.
	SecretKeyFile string
	// SecretKey is that key itself, base64. It is read only from the
	// environment variable WEBHOOKD_SECRET_KEY (never a flag or the YAML
	// file, so it stays out of process listings and config files) and is
	// never printed.
	SecretKey string
	// PprofAddr (pprof-addr) is where the Go profiler's HTTP endpoints
	// (/debug/pprof/) listen; empty (the default) serves none. A bare port
	// or ":port" binds loopback (see PprofListen).
	PprofAddr string
	// OTLPEndpoint (otlp-endpoint) is where traces go, over OTLP/HTTP
	// (http://collector:4318); empty: no tracing.
	OTLPEndpoint string
	// MetricsRequireToken (metrics-require-token) makes /metrics ask for
	// the admin token like the API; without it /metrics is open.
	MetricsRequireToken bool
}

// MinAdminTokenLen is the shortest admin token accepted, in bytes: 32
// random bytes (webhookd generates 32, hex-encoded) resist guessing.
const MinAdminTokenLen = 32

// StoreSync is when the embedded server's file store calls fsync.
type StoreSync struct {
	// Always syncs after every write; Interval is then unused.
	Always bool
	// Interval between background syncs.
	Interval time.Duration
}

// ParseStoreSync reads "always" or a positive duration such as "1s".
func ParseStoreSync(s string) (StoreSync, error) {
	if strings.EqualFold(strings.TrimSpace(s), "always") {
		return StoreSync{Always: true}, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d <= 0 {
		return StoreSync{}, fmt.Errorf("%q: want always or a positive duration such as 1s", s)
	}
	return StoreSync{Interval: d}, nil
}

// String returns the form ParseStoreSync reads.
func (s StoreSync) String() string {
	if s.Always {
		return "always"
	}
	return s.Interval.String()
}

// EnvSecretKey is the environment variable that gives the secret key itself.
const EnvSecretKey = "WEBHOOKD_SECRET_KEY"

// Catalog returns the built-in event types.
func Catalog() []string {
	return []string{
		"robot.connected", "robot.disconnected", "task.created", "task.completed",
		"task.failed", "alert.triggered", "maintenance.due",
		// Operational events webhookd publishes itself; robots may not.
		"webhook.subscription_disabled", "webhook.delivery_exhausted",
		// The test event of "subscriptions ping", sent to one endpoint, never routed.
		"webhook.ping",
	}
}

// Default returns the configuration used when nothing else is given.
func Default() Config {
	return Config{
		DataDir:        "./data",
		NATSListen:     "127.0.0.1:4222",
		StreamReplicas: 1,
		StoreSync:      StoreSync{Interval: time.Second},

		NATSMaxConnections:        1024,
		NATSMaxRobotConnections:   64,
		NATSMaxRobotSubscriptions: 100,
		NATSMaxPending:            64 << 20,
		NATSAuthFailureDelay:      time.Second,

		HTTPAddr:            "127.0.0.1:8080",
		HTTPReadTimeout:     30 * time.Second,
		HTTPPublicPerClient: 8,
		ConsoleSessionTTL:   12 * time.Hour,
		ListenGrace:         45 * time.Second,
		ListenBuffer:        256,
		DeliveryTimeout:     30 * time.Second,
		RetryBackoff:        Backoff{Delays: []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second}},
		LogLevel:            "info",
		LogFormat:           "json",
		Workers:             64,
		ShutdownTimeout:     30 * time.Second,
		AckWait:             30 * time.Second,
		MaxAckPending:       100_000,
		Retention:           30 * 24 * time.Hour,
		History:             true,
		SecretGrace:         24 * time.Hour,
		MaxEventSize:        1 << 20,
		MaxStore:            10 << 30,
		EventRetention:      24 * time.Hour,
		EventRetentionBytes: 1 << 30,
		DedupWindow:         DuplicateWindow,
		MemoryLimit:         DefaultMemoryLimit,
		StoreMinFree:        32 << 20,
		MaxInFlight:         8,
		BreakerFailures:     5,
		BreakerCooldown:     30 * time.Second,
		DisableAfter:        5 * 24 * time.Hour,
	}
}

// AllEventTypes returns the catalog plus the configured extra types.
func (c Config) AllEventTypes() []string {
	return append(Catalog(), c.EventTypes...)
}

// field binds one key to its Config field. Every source (YAML, environment,
// flags) goes through set, so each value is parsed and checked one way.
type field struct {
	name  string
	usage string
	get   func(*Config) string
	set   func(*Config, string) error
}

// The bool keys: their flags may be given without a value. (Listed apart
// from field so the field literals stay as they are.)
const (
	keyAllowAnonymous      = "nats-allow-anonymous"
	keyMetricsRequireToken = "metrics-require-token"
	keyHistory             = "history"
)

func fields() []field {
	str := func(name, usage string, p func(*Config) *string) field {
		return field{name, usage,
			func(c *Config) string { return *p(c) },
			func(c *Config, s string) error { *p(c) = s; return nil }}
	}
	dur := func(name, usage string, p func(*Config) *time.Duration) field {
		return field{name, usage,
			func(c *Config) string { return p(c).String() },
			func(c *Config, s string) error {
				d, err := time.ParseDuration(s)
				if err != nil {
					return err
				}
				*p(c) = d
				return nil
			}}
	}
	num := func(name, usage string, p func(*Config) *int) field {
		return field{name, usage,
			func(c *Config) string { return strconv.Itoa(*p(c)) },
			func(c *Config, s string) error {
				n, err := strconv.Atoi(s)
				if err != nil {
					return errors.New("not a whole number")
				}
				*p(c) = n
				return nil
			}}
	}
	boolean := func(name, usage string, p func(*Config) *bool) field {
		return field{name, usage,
			func(c *Config) string { return strconv.FormatBool(*p(c)) },
			func(c *Config, s string) error {
				b, err := strconv.ParseBool(s)
				if err != nil {
					return errors.New("want true or false")
				}
				*p(c) = b
				return nil
			}}
	}
	size := func(name, usage string, p func(*Config) *int64) field {
		return field{name, usage,
			func(c *Config) string { return FormatSize(*p(c)) },
			func(c *Config, s string) error {
				n, err := ParseSize(s)
				if err != nil {
					return err
				}
				*p(c) = n
				return nil
			}}
	}
	return []field{
		str("data-dir", "directory for the bbolt file and the embedded NATS store (created when missing)", func(c *Config) *string { return &c.DataDir }),
		str("nats-url", "external NATS server(s), comma-separated; empty runs an embedded server", func(c *Config) *string { return &c.NATSURL }),
		str("nats-creds", "credentials file (user JWT and NKey seed) for --nats-url", func(c *Config) *string { return &c.NATSCreds }),
		str("nats-nkey-seed", "file holding a user NKey seed (SU...) for --nats-url", func(c *Config) *string { return &c.NATSNKeySeed }),
		str("nats-user", "user name for --nats-url; the password comes from --nats-password, WEBHOOKD_NATS_PASSWORD or --nats-password-file", func(c *Config) *string { return &c.NATSUser }),
		str("nats-password", "password of --nats-user (prefer WEBHOOKD_NATS_PASSWORD or --nats-password-file: flags show in process listings); never logged", func(c *Config) *string { return &c.NATSPassword }),
		str("nats-password-file", "file holding the password of --nats-user", func(c *Config) *string { return &c.NATSPasswordFile }),
		str("nats-token", "token for --nats-url (prefer WEBHOOKD_NATS_TOKEN or --nats-token-file); never logged", func(c *Config) *string { return &c.NATSToken }),
		str("nats-token-file", "file holding the token for --nats-url", func(c *Config) *string { return &c.NATSTokenFile }),
		str("nats-tls-ca", "PEM file of the CAs that sign the NATS servers' certificates (turns TLS on)", func(c *Config) *string { return &c.NATSTLSCA }),
		str("nats-tls-cert", "PEM client certificate for NATS TLS (with --nats-tls-key)", func(c *Config) *string { return &c.NATSTLSCert }),
		str("nats-tls-key", "PEM key of --nats-tls-cert", func(c *Config) *string { return &c.NATSTLSKey }),
		num("stream-replicas", "copies of every stream and of the subscription bucket: 1, or 3 on a NATS cluster (1 to 5; above 1 needs --nats-url); changing it updates the existing streams", func(c *Config) *int { return &c.StreamReplicas }),
		str("nats-listen", "client address of the embedded NATS server; anything but loopback needs --nats-users-file or --nats-allow-anonymous", func(c *Config) *string { return &c.NATSListen }),
		str("nats-users-file", "YAML or JSON file of robots that may connect to the embedded NATS server (users with a password or bcrypt hash, or NKey public keys); giving one turns anonymous robots off unless --nats-allow-anonymous", func(c *Config) *string { return &c.NATSUsersFile }),
		boolean(keyAllowAnonymous, "accept robots without credentials on the embedded NATS server (they may only publish events.>); without it anonymous robots are accepted only on a loopback listener without --nats-users-file", func(c *Config) *bool { return &c.NATSAllowAnonymous }),
		num("nats-max-connections", "connections the embedded NATS server accepts in all, webhookd's own included (each costs about 45 KiB of memory and a file descriptor)", func(c *Config) *int { return &c.NATSMaxConnections }),
		num("nats-max-robot-connections", "connections of each robot named in --nats-users-file, and of all anonymous robots together", func(c *Config) *int { return &c.NATSMaxRobotConnections }),
		num("nats-max-robot-subscriptions", "subscriptions of one robot connection (a robot needs one for its publish acks)", func(c *Config) *int { return &c.NATSMaxRobotSubscriptions }),
		size("nats-max-pending", "bytes the embedded NATS server buffers for one connection that does not read before closing it as a slow consumer (webhookd's own included: at least 2 × max-event-size)", func(c *Config) *int64 { return &c.NATSMaxPending }),
		dur("nats-auth-failure-delay", "after a failed NATS authentication, the address's next attempts are checked at most once per this delay (each failure is logged at warn); 0: off", func(c *Config) *time.Duration { return &c.NATSAuthFailureDelay }),
		{name: "store-sync", usage: "when the embedded NATS store fsyncs: an interval such as 1s (a machine crash or power cut loses up to that much) or always (after every write: nothing acknowledged is lost, at a third of the throughput or less). Applies to the embedded single-node server only",
			get: func(c *Config) string { return c.StoreSync.String() },
			set: func(c *Config, s string) error {
				v, err := ParseStoreSync(s)
				if err != nil {
					return err
				}
				c.StoreSync = v
				return nil
			}},
		str("http-addr", "address of the admin API, /healthz, /readyz and /metrics", func(c *Config) *string { return &c.HTTPAddr }),
		dur("http-read-timeout", "how long a request, body included, may take to arrive on every HTTP listener (headers: at most 10s of it); a slower one is cut off and its connection closed", func(c *Config) *time.Duration { return &c.HTTPReadTimeout }),
		dur("console-session-ttl", "how long a console login lasts; logout ends it sooner on every replica. Give every replica the same value", func(c *Config) *time.Duration { return &c.ConsoleSessionTTL }),
		dur("listen-grace", "how long the ephemeral subscription of a `webhookctl listen` outlives its stream (a killed CLI, a dropped connection); it is deleted within 1.25 times this (1s to 45s)", func(c *Config) *time.Duration { return &c.ListenGrace }),
		num("listen-buffer", "deliveries a `webhookctl listen` stream holds while the listener is slow; beyond it they are dropped and the listener told how many", func(c *Config) *int { return &c.ListenBuffer }),
		num("http-public-per-client", "requests one client address may have in flight on the paths that need no token (/ui/login, /healthz, /readyz, /metrics, ...); more are answered 429", func(c *Config) *int { return &c.HTTPPublicPerClient }),
		str("admin-token", "bearer token of the admin API (empty: generated once into <data-dir>/admin-token)", func(c *Config) *string { return &c.AdminToken }),
		dur("delivery-timeout", "timeout of one delivery attempt", func(c *Config) *time.Duration { return &c.DeliveryTimeout }),
		{"retry-backoff", `retry delays, "5s,10s,15s" (one retry each) or "exp:INITIAL:MAX:RETRIES[:JITTER]"`,
			func(c *Config) string { return c.RetryBackoff.String() },
			func(c *Config, s string) error {
				b, err := ParseBackoff(s)
				if err != nil {
					return err
				}
				c.RetryBackoff = b
				return nil
			}},
		{"allow-targets", "CIDRs deliveries may reach despite the internal-address guard, e.g. 127.0.0.0/8",
			func(c *Config) string { return FormatPrefixes(c.AllowTargets) },
			func(c *Config, s string) error {
				c.AllowTargets = nil
				for _, part := range splitList(s) {
					p, err := parsePrefix(part)
					if err != nil {
						return err
					}
					c.AllowTargets = append(c.AllowTargets, p)
				}
				return nil
			}},
		str("log-level", "log level: debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
		str("log-format", "log format: json or console", func(c *Config) *string { return &c.LogFormat }),
		num("workers", "concurrent delivery attempts per replica", func(c *Config) *int { return &c.Workers }),
		dur("shutdown-timeout", "how long in-flight attempts may finish after SIGTERM", func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
		dur("ack-wait", "how long before a silent (crashed) worker's job is redelivered", func(c *Config) *time.Duration { return &c.AckWait }),
		num("max-ack-pending", "unsettled jobs (waiting retries included) across all replicas", func(c *Config) *int { return &c.MaxAckPending }),
		dur("retention", "how long delivery history is kept", func(c *Config) *time.Duration { return &c.Retention }),
		boolean(keyHistory, "index the delivery history (AUDIT) in this replica's bbolt file and answer other replicas' history queries; false: keep no index and ask a replica that has one over NATS (needs one with --history on the same NATS)", func(c *Config) *bool { return &c.History }),
		dur("secret-grace", "how long a rotated-out secret keeps signing deliveries", func(c *Config) *time.Duration { return &c.SecretGrace }),
		size("max-event-size", "largest event data accepted over NATS and HTTP, e.g. 1MiB", func(c *Config) *int64 { return &c.MaxEventSize }),
		dur("event-retention", "how long a routed event's payload is kept (the message log); 0: purged as soon as routed. An event not yet routed is never purged", func(c *Config) *time.Duration { return &c.EventRetention }),
		size("event-retention-bytes", "cap on what routed events keep: above it the oldest routed ones are purged first; at most half of EVENTS's quarter of --max-store is used, so unrouted events keep room; 0: no cap but that", func(c *Config) *int64 { return &c.EventRetentionBytes }),
		dur("dedup-window", "how long the streams remember a message id (Nats-Msg-Id): a robot's retry within it is not stored twice; each id costs the NATS server roughly 150 bytes of memory for this long", func(c *Config) *time.Duration { return &c.DedupWindow }),
		size("memory-limit", "soft limit of the Go heap (runtime/debug.SetMemoryLimit), e.g. 512MiB; GOMEMLIMIT wins when set; 0: none", func(c *Config) *int64 { return &c.MemoryLimit }),
		size("max-store", "bytes the streams may hold (EVENTS 1/4, DELIVERIES 1/4, ORDERED 1/8, AUDIT 3/8); when EVENTS is full new events are refused; 0: no cap", func(c *Config) *int64 { return &c.MaxStore }),
		size("store-min-free", "free space the embedded NATS store's filesystem must keep: below it, or after a failed write, new events are refused at once, /readyz says not ready and webhookd_store_writable is 0, until space returns (at least 1MiB)", func(c *Config) *int64 { return &c.StoreMinFree }),
		num("max-in-flight", "attempts in flight per subscription and replica, unless the subscription sets its own", func(c *Config) *int { return &c.MaxInFlight }),
		num("breaker-failures", "failures in a row that open a subscription's circuit breaker", func(c *Config) *int { return &c.BreakerFailures }),
		dur("breaker-cooldown", "how long an open circuit breaker holds jobs back before one probe attempt", func(c *Config) *time.Duration { return &c.BreakerCooldown }),
		dur("disable-after", "disable a subscription that failed without a single success for this long (0: never)", func(c *Config) *time.Duration { return &c.DisableAfter }),
		str("secret-key-file", "file with a base64 32-byte key (openssl rand -base64 32) that encrypts subscription secrets at rest; or give the key in "+EnvSecretKey, func(c *Config) *string { return &c.SecretKeyFile }),
		{"event-types", "event types accepted in addition to the built-in catalog, comma-separated",
			func(c *Config) string { return strings.Join(c.EventTypes, ",") },
			func(c *Config, s string) error { c.EventTypes = splitList(s); return nil }},
		str("otlp-endpoint", "send a trace of each event (route and attempts) to this OTLP/HTTP endpoint, e.g. http://127.0.0.1:4318; OTEL_* variables apply too; empty: off", func(c *Config) *string { return &c.OTLPEndpoint }),
		str("event-schemas", "directory of JSON Schemas (draft 2020-12), one <type>.json per event type: an event whose data fails its type's schema is rejected, never delivered; each file adds its type to the catalog. A file that does not compile stops webhookd at start", func(c *Config) *string { return &c.EventSchemas }),
		str("pprof-addr", "serve Go's profiler (/debug/pprof/) at this address, e.g. :6060 (a bare port binds 127.0.0.1); empty: off. It has no authentication: keep it on loopback", func(c *Config) *string { return &c.PprofAddr }),
		boolean(keyMetricsRequireToken, "/metrics asks for the admin token (Authorization: Bearer) like the API; without it /metrics needs no token", func(c *Config) *bool { return &c.MetricsRequireToken }),
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// FormatPrefixes is prefixes as --allow-targets takes them, comma-separated.
func FormatPrefixes(prefixes []netip.Prefix) string {
	s := make([]string, len(prefixes))
	for i, p := range prefixes {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// EnvName returns the environment variable read for a key.
func EnvName(key string) string {
	return "WEBHOOKD_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// Load builds the configuration from defaults, the YAML file named by
// --config (or WEBHOOKD_CONFIG), the environment and args, in that order of
// precedence, and validates it. lookupEnv is usually os.LookupEnv. Usage goes
// to usage; with --help Load returns flag.ErrHelp.
func Load(args []string, lookupEnv func(string) (string, bool), usage io.Writer) (Config, error) {
	fs := flag.NewFlagSet("webhookd", flag.ContinueOnError)
	boolKeys := map[string]bool{keyAllowAnonymous: true, keyMetricsRequireToken: true, keyHistory: true}
	// The flag package's own messages and usage are replaced by one line
	// (flagError) and by PrintUsage for --help.
	fs.SetOutput(io.Discard)
	all := fields()
	def := Default()
	given := map[string]string{}
	for _, f := range all {
		register := fs.Func
		if boolKeys[f.name] {
			register = fs.BoolFunc // --name alone means true
		}
		register(f.name, f.usage+" (default "+strconv.Quote(f.get(&def))+")", func(s string) error {
			given[f.name] = s
			return nil
		})
	}
	configFile := fs.String(configKey, "", "YAML file with any of these keys")
	fs.Usage = func() {}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		PrintUsage(usage)
		return Config{}, err
	} else if err != nil {
		return Config{}, flagError(err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("config: unexpected argument %q", fs.Arg(0))
	}

	cfg := Default()
	path := *configFile
	if path == "" {
		path, _ = lookupEnv("WEBHOOKD_CONFIG")
	}
	if path != "" {
		if err := cfg.applyYAML(path, all); err != nil {
			return Config{}, err
		}
	}
	for _, f := range all {
		if v, ok := lookupEnv(EnvName(f.name)); ok {
			if err := f.set(&cfg, v); err != nil {
				return Config{}, &FieldError{Field: f.name, Reason: fmt.Sprintf("%s=%q: %v", EnvName(f.name), v, err), Err: err}
			}
		}
	}
	if v, ok := lookupEnv(EnvSecretKey); ok {
		cfg.SecretKey = v
	}
	for _, f := range all {
		if v, ok := given[f.name]; ok {
			if err := f.set(&cfg, v); err != nil {
				return Config{}, &FieldError{Field: f.name, Reason: fmt.Sprintf("--%s=%q: %v", f.name, v, err), Err: err}
			}
		}
	}
	return cfg, cfg.Validate()
}

func (c *Config) applyYAML(path string, all []field) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: read %s: %w", path, err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("config: parse %s: %w", path, err)
	}
	byName := map[string]field{}
	for _, f := range all {
		byName[f.name] = f
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f, ok := byName[k]
		if !ok {
			reason := fmt.Sprintf("unknown key in %s", path)
			if s := suggestFlags(k); len(s) > 0 {
				reason += "; did you mean " + strings.ReplaceAll(suggest.DashList(s), "--", "") + "?"
			}
			return &FieldError{Field: k, Reason: reason}
		}
		v, err := yamlScalar(doc[k])
		if err == nil {
			err = f.set(c, v)
		}
		if err != nil {
			return &FieldError{Field: k, Reason: fmt.Sprintf("in %s: %v", path, err), Err: err}
		}
	}
	return nil
}

// yamlScalar turns a YAML value into the string form a flag takes; a list
// becomes a comma-separated string.
func yamlScalar(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case int, float64, bool:
		return fmt.Sprint(v), nil
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			s, err := yamlScalar(e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	default:
		return "", fmt.Errorf("want a value or a list, got %T", v)
	}
}

// Validate checks every field and returns a *FieldError for the first bad one.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if c.DataDir == "" {
		return bad("data-dir", "must not be empty")
	}
	if c.NATSURL == "" {
		if _, _, err := splitHostPort(c.NATSListen); err != nil {
			return bad("nats-listen", "%q: %v", c.NATSListen, err)
		}
		if !c.StoreSync.Always && c.StoreSync.Interval <= 0 {
			return bad("store-sync", "%s: want always or a positive duration", c.StoreSync)
		}
		if c.StoreMinFree < 1<<20 {
			return bad("store-min-free", "%s: want at least 1MiB", FormatSize(c.StoreMinFree))
		}
		if err := c.validateNATSLimits(); err != nil {
			return err
		}
	} else if c.NATSUsersFile != "" {
		return bad("nats-users-file", "applies to the embedded server only; with --nats-url the cluster's own configuration names its users")
	}
	if err := c.validateNATSClient(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return bad("http-addr", "%q: want host:port: %v", c.HTTPAddr, err)
	}
	if c.AdminToken != "" && len(c.AdminToken) < MinAdminTokenLen { // never echo the token
		return bad("admin-token", "too short: %d bytes, want at least %d (e.g. openssl rand -hex 32), or leave it empty to have one generated",
			len(c.AdminToken), MinAdminTokenLen)
	}
	if why := WeakToken(c.AdminToken); why != "" {
		return bad("admin-token", "too predictable (%s): generate one with openssl rand -hex 32, or leave it empty to have one generated", why)
	}
	if c.HTTPReadTimeout <= 0 {
		return bad("http-read-timeout", "must be positive, got %s", c.HTTPReadTimeout)
	}
	if c.ListenGrace < time.Second || c.ListenGrace > 45*time.Second {
		return bad("listen-grace", "%s: want 1s to 45s", c.ListenGrace)
	}
	if c.ListenBuffer < 1 || c.ListenBuffer > 100_000 {
		return bad("listen-buffer", "%d: want 1 to 100000", c.ListenBuffer)
	}
	if c.ConsoleSessionTTL < time.Minute || c.ConsoleSessionTTL > 30*24*time.Hour {
		return bad("console-session-ttl", "%s: want 1m to 720h", c.ConsoleSessionTTL)
	}
	if c.HTTPPublicPerClient < 1 || c.HTTPPublicPerClient > 10_000 {
		return bad("http-public-per-client", "%d: want 1 to 10000", c.HTTPPublicPerClient)
	}
	if c.DeliveryTimeout <= 0 {
		return bad("delivery-timeout", "must be positive, got %s", c.DeliveryTimeout)
	}
	switch c.LogLevel {
	case "trace", "debug", "info", "warn", "error":
	default:
		return bad("log-level", "%q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		return bad("log-format", "%q: want json or console", c.LogFormat)
	}
	if c.Workers < 1 || c.Workers > 10_000 {
		return bad("workers", "%d: want 1 to 10000", c.Workers)
	}
	if c.ShutdownTimeout <= 0 {
		return bad("shutdown-timeout", "must be positive, got %s", c.ShutdownTimeout)
	}
	if c.AckWait < time.Second {
		return bad("ack-wait", "%s: want at least 1s", c.AckWait)
	}
	if c.MaxAckPending < c.Workers {
		return bad("max-ack-pending", "%d: want at least workers (%d)", c.MaxAckPending, c.Workers)
	}
	if c.Retention < time.Hour {
		return bad("retention", "%s: want at least 1h", c.Retention)
	}
	// A delivery's records and index entry expire --retention after it was
	// created: one still retrying then would lose the start of its history.
	if longest := c.RetryBackoff.Longest() + time.Duration(c.RetryBackoff.Attempts())*c.DeliveryTimeout; c.Retention <= longest {
		return bad("retention", "%s: want longer than the longest retry schedule, %s (the retry-backoff delays plus %d attempts of delivery-timeout)",
			c.Retention, longest, c.RetryBackoff.Attempts())
	}
	// An attempt repeated after a crash is recognised by its record's and
	// next job's message ids within the streams' duplicate window: its job
	// comes back after ack-wait, and its attempt lasts up to delivery-timeout.
	if c.DedupWindow < 10*time.Second || c.DedupWindow > time.Hour {
		return bad("dedup-window", "%s: want 10s to 1h", c.DedupWindow)
	}
	if c.AckWait+c.DeliveryTimeout+dedupMargin >= c.DedupWindow {
		return bad("ack-wait", "%s: ack-wait plus delivery-timeout (%s) plus %s must stay under the %s --dedup-window, or an attempt repeated after a crash could queue the next attempt twice",
			c.AckWait, c.DeliveryTimeout, dedupMargin, c.DedupWindow)
	}
	if c.EventRetention < 0 {
		return bad("event-retention", "must not be negative, got %s", c.EventRetention)
	}
	if c.EventRetentionBytes < 0 {
		return bad("event-retention-bytes", "must not be negative, got %d", c.EventRetentionBytes)
	}
	if c.MemoryLimit != 0 && c.MemoryLimit < 64<<20 {
		return bad("memory-limit", "%s: want 0 (none) or at least 64MiB", FormatSize(c.MemoryLimit))
	}
	if c.SecretGrace < 0 {
		return bad("secret-grace", "must not be negative, got %s", c.SecretGrace)
	}
	if c.MaxEventSize < 1<<10 || c.MaxEventSize > 32<<20 {
		return bad("max-event-size", "%s: want 1KiB to 32MiB", FormatSize(c.MaxEventSize))
	}
	if c.MaxStore != 0 && c.MaxStore < 64*c.MaxEventSize {
		return bad("max-store", "%s: want 0 (no cap) or at least 64 × max-event-size (%s)", FormatSize(c.MaxStore), FormatSize(64*c.MaxEventSize))
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > 1000 {
		return bad("max-in-flight", "%d: want 1 to 1000", c.MaxInFlight)
	}
	if c.BreakerFailures < 1 || c.BreakerFailures > 1000 {
		return bad("breaker-failures", "%d: want 1 to 1000", c.BreakerFailures)
	}
	if c.BreakerCooldown < 100*time.Millisecond || c.BreakerCooldown > time.Hour {
		return bad("breaker-cooldown", "%s: want 100ms to 1h", c.BreakerCooldown)
	}
	if c.DisableAfter < 0 || c.DisableAfter > 0 && c.DisableAfter < time.Minute {
		return bad("disable-after", "%s: want 0 (never) or at least 1m", c.DisableAfter)
	}
	if c.SecretKeyFile != "" && c.SecretKey != "" {
		return bad("secret-key-file", "set either it or %s, not both", EnvSecretKey)
	}
	if c.PprofAddr != "" {
		if _, _, err := splitHostPort(c.PprofListen()); err != nil {
			return bad("pprof-addr", "%q: %v", c.PprofAddr, err)
		}
	}
	for _, t := range c.EventTypes {
		if !ValidEventType(t) {
			return bad("event-types", "%q: want dot-separated tokens of letters, digits, '_' or '-'", t)
		}
	}
	return nil
}

// validateNATSLimits checks the embedded server's connection limits.
func (c Config) validateNATSLimits() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case c.NATSMaxConnections < 2:
		return bad("nats-max-connections", "%d: want at least 2 (webhookd's own connection takes one)", c.NATSMaxConnections)
	case c.NATSMaxRobotConnections < 1:
		return bad("nats-max-robot-connections", "%d: want at least 1", c.NATSMaxRobotConnections)
	case c.NATSMaxRobotSubscriptions < 1:
		return bad("nats-max-robot-subscriptions", "%d: want at least 1 (a robot subscribes once for its publish acks)", c.NATSMaxRobotSubscriptions)
	case c.NATSMaxPending < 2*c.MaxEventSize || c.NATSMaxPending < 1<<20:
		return bad("nats-max-pending", "%s: want at least 1MiB and 2 × max-event-size (%s): webhookd's own connection receives whole events",
			FormatSize(c.NATSMaxPending), FormatSize(2*c.MaxEventSize))
	case c.NATSAuthFailureDelay < 0 || c.NATSAuthFailureDelay > 10*time.Second:
		return bad("nats-auth-failure-delay", "%s: want 0 (off) to 10s", c.NATSAuthFailureDelay)
	}
	return nil
}

// PprofListen returns the address the profiler listens on: PprofAddr, with
// 127.0.0.1 when it names no host (":6060" or "6060"); "" when off.
func (c Config) PprofListen() string {
	addr := strings.TrimSpace(c.PprofAddr)
	if addr == "" {
		return ""
	}
	if !strings.Contains(addr, ":") {
		addr = ":" + addr
	}
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// DuplicateWindow is the default of --dedup-window (the jetstream
// package's default); dedupMargin is the time a worker may take to record
// an attempt.
const (
	DuplicateWindow = 2 * time.Minute
	dedupMargin     = 10 * time.Second
)

// DefaultMemoryLimit is the default of --memory-limit: the Go heap's
// share of a replica of about 1 GiB, leaving room for the embedded NATS
// server's caches, the index's mapped pages and the stacks.
const DefaultMemoryLimit = 512 << 20

// RetainedEventBytes is the byte cap on routed events the purger applies:
// EventRetentionBytes, but at most half of EVENTS's quarter of MaxStore,
// so that retained events never leave unrouted ones without room; 0: none.
func (c Config) RetainedEventBytes() int64 {
	limit := c.EventRetentionBytes
	if half := c.MaxStore / 8; c.MaxStore > 0 && (limit == 0 || limit > half) {
		limit = half
	}
	return limit
}

// NATSHostPort splits NATSListen into host and port.
func (c Config) NATSHostPort() (string, int, error) { return splitHostPort(c.NATSListen) }

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("want host:port: %w", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("port %q: want 1 to 65535", p)
	}
	return host, port, nil
}

// ValidEventType reports whether t is a concrete event type: dot-separated
// non-empty tokens without NATS wildcards or spaces.
func ValidEventType(t string) bool {
	if t == "" || len(t) > 128 {
		return false
	}
	for _, tok := range strings.Split(t, ".") {
		if tok == "" {
			return false
		}
		for _, r := range tok {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return false
			}
		}
	}
	return true
}

// validateNATSClient checks the stream replicas and the client options of a
// connection to an external NATS: they need --nats-url, at most one way to
// authenticate, and their halves (user and password, certificate and key).
// Files are read when connecting. Secrets are never echoed.
func (c Config) validateNATSClient() error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		return bad("stream-replicas", "%d: want 1 to 5 (3 on a 3-node cluster)", c.StreamReplicas)
	}
	if c.NATSURL == "" {
		if c.StreamReplicas > 1 {
			return bad("stream-replicas", "%d needs an external NATS cluster (--nats-url): the embedded server is a single node", c.StreamReplicas)
		}
		for _, f := range []struct{ name, v string }{
			{"nats-creds", c.NATSCreds}, {"nats-nkey-seed", c.NATSNKeySeed}, {"nats-user", c.NATSUser},
			{"nats-password", c.NATSPassword}, {"nats-password-file", c.NATSPasswordFile},
			{"nats-token", c.NATSToken}, {"nats-token-file", c.NATSTokenFile},
			{"nats-tls-ca", c.NATSTLSCA}, {"nats-tls-cert", c.NATSTLSCert}, {"nats-tls-key", c.NATSTLSKey},
		} {
			if f.v != "" {
				return bad(f.name, "applies to an external NATS only: set --nats-url too")
			}
		}
		return nil
	}
	if c.NATSPassword != "" && c.NATSPasswordFile != "" {
		return bad("nats-password-file", "set either it or --nats-password (WEBHOOKD_NATS_PASSWORD), not both")
	}
	if c.NATSToken != "" && c.NATSTokenFile != "" {
		return bad("nats-token-file", "set either it or --nats-token (WEBHOOKD_NATS_TOKEN), not both")
	}
	hasPassword := c.NATSPassword != "" || c.NATSPasswordFile != ""
	if c.NATSUser != "" && !hasPassword {
		return bad("nats-user", "needs a password: --nats-password-file, WEBHOOKD_NATS_PASSWORD or --nats-password")
	}
	if c.NATSUser == "" && hasPassword {
		return bad("nats-password", "needs --nats-user")
	}
	var ways []string
	for _, w := range []struct {
		name string
		set  bool
	}{
		{"--nats-creds", c.NATSCreds != ""}, {"--nats-nkey-seed", c.NATSNKeySeed != ""},
		{"--nats-user", c.NATSUser != ""}, {"--nats-token", c.NATSToken != "" || c.NATSTokenFile != ""},
	} {
		if w.set {
			ways = append(ways, w.name)
		}
	}
	if len(ways) > 1 {
		return bad(strings.TrimPrefix(ways[1], "--"), "give one way to authenticate to NATS, not %s", strings.Join(ways, " and "))
	}
	if (c.NATSTLSCert == "") != (c.NATSTLSKey == "") {
		return bad("nats-tls-cert", "a client certificate needs both --nats-tls-cert and --nats-tls-key")
	}
	return nil
}
