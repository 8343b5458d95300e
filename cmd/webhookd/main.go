// Command webhookd is the webhook dispatcher daemon: it routes events
// published to NATS (events.<type>) to every subscribed HTTP endpoint, signed,
// with retries and an audit trail. Run "webhookd --help" for its flags.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sync/errgroup"

	"github.com/robotlab/webhookd/admin"
	"github.com/robotlab/webhookd/config"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/delivery/schema"
	"github.com/robotlab/webhookd/dispatcher"
	"github.com/robotlab/webhookd/internal/boltfile"
	"github.com/robotlab/webhookd/internal/tracing"
	"github.com/robotlab/webhookd/internal/version"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/metrics"
	"github.com/robotlab/webhookd/subscriptions"
	"github.com/robotlab/webhookd/subscriptions/expr"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "webhookd:", err)
		os.Exit(1)
	}
}

// run starts webhookd and blocks until ctx is done or a component fails.
// Logs go to stdout. It returns nil after a clean stop or --help. With the
// subcommand "compact" it compacts the bbolt file instead (see compact).
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout io.Writer) error {
	if len(args) > 0 && args[0] == "compact" {
		return compact(args[1:], lookupEnv, stdout)
	}
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' && closeTo(args[0], "compact") {
		return fmt.Errorf("unknown command %q; did you mean \"compact\"?", args[0])
	}
	if wantsVersion(args) {
		_, err := fmt.Fprintln(stdout, version.Read().String("webhookd"))
		return err
	}
	cfg, err := config.Load(args, lookupEnv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "  --version\n        print the version, VCS revision and Go version, and exit\n")
		fmt.Fprintf(stdout, "\nSubcommands:\n  compact [--data-dir DIR]\n        %s\n", compactUsage)
		return nil
	}
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stdout)
	if err != nil {
		return err
	}
	if len(cfg.AllowTargets) > 0 { // first, so that nobody misses it
		log.Warn().Str("allow_targets", config.FormatPrefixes(cfg.AllowTargets)).
			Msg("deliveries may reach these internal addresses (--allow-targets): for local development and in-house receivers; the default allows none")
	}
	defer setMemoryLimit(cfg.MemoryLimit, log)()
	key, err := secretKey(cfg) // before anything starts: a bad key fails fast
	if err != nil {
		return err
	}
	schemas, err := eventSchemas(cfg.EventSchemas) // so does a bad schema
	if err != nil {
		return err
	}
	catalog := withSchemaTypes(cfg.AllEventTypes(), schemas)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := checkDataDir(cfg.DataDir); err != nil {
		return err
	}

	// The bbolt lock doubles as the data dir lock: nats-server does not lock
	// its store, so it must be taken before the embedded server starts.
	// Everything in the file is rebuilt from NATS: a damaged one is set
	// aside and replaced (see internal/boltfile).
	dbPath := filepath.Join(cfg.DataDir, dbFile)
	db, err := boltfile.Open(dbPath, boltfile.Options{Bolt: bolt.Options{Timeout: lockTimeout}, OpenDB: openDB}, log)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("data dir %s is in use by another webhookd (lock on %s)", cfg.DataDir, dbPath)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", dbPath, err)
	}
	defer db.Close()
	var replica string
	if err := onceMore(func() (err error) { replica, err = replicaID(db); return err }); err != nil {
		return err
	}
	if err := db.OnReset(func(tx *bolt.Tx) error { return putReplicaID(tx, replica) }); err != nil {
		return err
	}
	log = log.With().Str("replica", replica).Logger()
	token, err := adminToken(cfg, log)
	if err != nil {
		return err
	}

	conn, err := jetstream.Open(ctx, jetstream.Options{
		URL: cfg.NATSURL, StoreDir: jetstream.StoreDir(cfg.DataDir), Listen: cfg.NATSListen, Name: "webhookd-" + replica,
		UsersFile: cfg.NATSUsersFile, AllowAnonymous: cfg.NATSAllowAnonymous,
		SyncAlways: cfg.StoreSync.Always, SyncInterval: cfg.StoreSync.Interval, StoreMinFree: cfg.StoreMinFree,
		MaxConnections: cfg.NATSMaxConnections, MaxRobotConnections: cfg.NATSMaxRobotConnections,
		MaxRobotSubscriptions: cfg.NATSMaxRobotSubscriptions, MaxPending: cfg.NATSMaxPending,
		AuthFailureDelay: cfg.NATSAuthFailureDelay,
		// Room for a job: the largest event plus its headers.
		MaxPayload: int32(cfg.MaxEventSize + 64<<10),
		Client: jetstream.Client{
			Creds: cfg.NATSCreds, NKeySeed: cfg.NATSNKeySeed, User: cfg.NATSUser, Password: cfg.NATSPassword,
			PasswordFile: cfg.NATSPasswordFile, Token: cfg.NATSToken, TokenFile: cfg.NATSTokenFile,
			TLSCA: cfg.NATSTLSCA, TLSCert: cfg.NATSTLSCert, TLSKey: cfg.NATSTLSKey,
		},
	}, log)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w; another process (a webhookd or nats-server?) holds %s: stop it, or give another address with --nats-listen", err, cfg.NATSListen)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	maxEvent := cfg.MaxEventSize
	if room := conn.NC.MaxPayload() - jetstream.EventHeaderAllowance; room < maxEvent {
		log.Warn().Int64("max_event_size", maxEvent).Int64("nats_max_payload", conn.NC.MaxPayload()).
			Msg("the NATS server's max_payload leaves less room than --max-event-size; larger events are refused")
		maxEvent = room
	}
	if err := jetstream.Provision(ctx, conn.JS, jetstream.Provisioning{
		AuditRetention: cfg.Retention, AckWait: cfg.AckWait, MaxAckPending: cfg.MaxAckPending,
		MaxEventBytes: maxEvent, MaxStore: cfg.MaxStore, Replicas: cfg.StreamReplicas, SessionTTL: cfg.ConsoleSessionTTL,
		DuplicateWindow: cfg.DedupWindow, EventID: delivery.EventIDFromSequence,
	}); err != nil {
		return err
	}
	salt, err := jetstream.EventSalt(ctx, conn.JS)
	if err != nil {
		return err
	}
	purger := jetstream.NewPurger(conn.JS, jetstream.PurgerConfig{
		Retention: cfg.EventRetention, RetentionBytes: cfg.RetainedEventBytes(),
	}, log)
	kv, err := conn.JS.KeyValue(ctx, jetstream.BucketSubscriptions)
	if err != nil {
		return fmt.Errorf("open subscription bucket: %w", err)
	}
	revoked, err := conn.JS.KeyValue(ctx, jetstream.BucketRevokedSessions)
	if err != nil {
		return fmt.Errorf("open revoked sessions bucket: %w", err)
	}
	teamTokens, err := conn.JS.KeyValue(ctx, jetstream.BucketTeamTokens)
	if err != nil {
		return fmt.Errorf("open team tokens bucket: %w", err)
	}
	var subOpts []subscriptions.Option
	if key != nil {
		subOpts = append(subOpts, subscriptions.WithSecretKey(key))
		log.Info().Str("key_id", key.ID()).Msg("subscription secrets are encrypted at rest")
	}
	var subs *subscriptions.Store
	if err := onceMore(func() (err error) { subs, err = subscriptions.Open(kv, db, log, subOpts...); return err }); err != nil {
		return err
	}
	if err := db.OnReset(subs.Reset); err != nil {
		return err
	}
	if key != nil {
		if err := reseal(ctx, subs, conn, key, log); err != nil {
			return err
		}
	}
	// With --history the index lives here; without, the history is asked
	// of a replica that has one (history.Remote).
	var store *history.Store
	remote := history.NewRemote(conn.NC)
	var reader history.Reader = remote
	if cfg.History {
		if err := onceMore(func() (err error) { store, err = history.OpenStore(db, log); return err }); err != nil {
			return err
		}
		if err := db.OnReset(store.Reset); err != nil {
			return err
		}
		reader = store
	} else {
		log.Info().Msg("history off (--history=false): no local index; history queries go to a replica with --history over NATS")
	}
	recorder := history.NewRecorder(conn.JS, store, replica)
	// The recorder outlives the dispatcher and the admin API, which record
	// while they stop: it stops after them (deferred first, runs last).
	rctx, stopRecorder := context.WithCancel(context.WithoutCancel(ctx))
	recorded := make(chan error, 1)
	go func() { recorded <- recorder.Run(rctx) }()
	defer func() { stopRecorder(); <-recorded }()
	version, revision := buildInfo()
	tracer, err := tracing.New(ctx, cfg.OTLPEndpoint, version)
	if err != nil {
		return err
	}
	// Deferred before the dispatcher stops: runs after it, so the spans of
	// the last attempts are exported.
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tracer.Shutdown(sctx); err != nil {
			log.Warn().Err(err).Msg("exporting the last spans failed")
		}
	}()
	if tracer != nil {
		log.Info().Str("otlp_endpoint", cfg.OTLPEndpoint).Msg("tracing each event")
	}
	// One compiler for the admin API, the router and the deliverer: an
	// expression the API accepted is the program they run.
	exprs, err := expr.NewCompiler()
	if err != nil {
		return err
	}
	deliverer := delivery.NewDeliverer(delivery.Config{
		DefaultTimeout: cfg.DeliveryTimeout, AllowTargets: cfg.AllowTargets, Tracer: tracer,
		Exprs: exprs, MaxBodyBytes: int(maxEvent),
	})
	defer deliverer.Close()
	endpoints := endpoint.NewEndpoints(endpoint.Config{
		MaxInFlight: cfg.MaxInFlight, BreakerFailures: cfg.BreakerFailures,
		BreakerCooldown: cfg.BreakerCooldown, DisableAfter: cfg.DisableAfter,
		// A quarter of the pending limit all subscriptions share.
		MaxHeldBack: cfg.MaxAckPending / 4,
	}, log)
	g, gctx := errgroup.WithContext(ctx)
	guard := conn.StoreGuard() // nil with an external NATS
	// ready is what /readyz answers by, and webhookd_ready reports.
	ready := func() error {
		if err := guard.Err(); err != nil {
			return err
		}
		select {
		case <-subs.Ready():
		default:
			return errors.New("subscription mirror catching up")
		}
		cctx, cancel := context.WithTimeout(gctx, 2*time.Second)
		defer cancel()
		return conn.Check(cctx)
	}
	metDeps := metrics.Deps{JS: conn.JS, Subscriptions: subs, Endpoints: endpoints, Ready: ready, EventsPurged: purger.Purged}
	if guard != nil {
		metDeps.StoreWritable = guard.Writable
	}
	met, err := metrics.New(metrics.Config{EventTypes: catalog, Version: version, Revision: revision}, metDeps, log)
	if err != nil {
		return err
	}
	disp, err := dispatcher.New(dispatcher.Config{
		Workers: cfg.Workers, ShutdownTimeout: cfg.ShutdownTimeout, AckWait: cfg.AckWait,
		EventTypes: routable(slices.Clone(catalog)), MaxEventBytes: int(maxEvent), EventIDSalt: salt,
	}, dispatcher.Deps{
		JS: conn.JS, Subscriptions: subs, Attempter: deliverer,
		Recorder: recorder, Policy: policy(cfg.RetryBackoff), Endpoints: endpoints, Observer: met, Tracer: tracer, Schemas: schemas,
		Exprs: exprs,
	}, log)
	if err != nil {
		return err
	}
	if err := met.WatchOrderedKeys(disp.OrderedKeysWaiting); err != nil {
		return err
	}
	var indexer *history.Indexer
	var applied history.Applied = remote
	if cfg.History {
		indexer = history.NewIndexer(history.IndexerConfig{Replica: replica, Retention: cfg.Retention}, conn.JS, store, log)
		applied = indexer
	}
	queue := dispatcher.NewQueue(dispatcher.QueueDeps{
		JS: conn.JS, Store: reader, Recorder: recorder, Subscriptions: subs, Index: applied,
	}, 0, log)

	api, err := admin.New(admin.Config{
		Token: token, Replica: replica, EventTypes: catalog, Schemas: schemas, AllowTargets: cfg.AllowTargets,
		DefaultTimeout: cfg.DeliveryTimeout, SecretGrace: cfg.SecretGrace, Retention: cfg.Retention, MaxEventBytes: int(maxEvent),
		MetricsRequireToken: cfg.MetricsRequireToken, MaxPublicPerClient: cfg.HTTPPublicPerClient, SessionTTL: cfg.ConsoleSessionTTL,
		EventIDSalt: salt, EventRetention: cfg.EventRetention,
		ListenGrace: cfg.ListenGrace, ListenBuffer: cfg.ListenBuffer,
	}, admin.Deps{
		JS: conn.JS, Subs: subs, Store: reader, Queue: queue, Endpoints: endpoints, Metrics: met.Handler(),
		Pinger: deliverer, Recorder: recorder, Sessions: revoked, Exprs: exprs, Tracer: tracer,
		Tokens:   teamTokens,
		Counters: func() map[string]uint64 { return disp.Stats().Map() }, OrderedKeys: disp.OrderedKeys,
		Ready: ready,
	}, log)
	if err != nil {
		return err
	}
	if indexer != nil {
		// Replicas without an index (--history=false) ask this one.
		svc, err := history.Serve(conn.NC, store, indexer, replica)
		if err != nil {
			return err
		}
		// Stopped before the store's file closes: no question reaches it after.
		defer func() { _ = svc.Stop() }()
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listen on http-addr %s: %w; another process holds it: stop it, or give another address with --http-addr", cfg.HTTPAddr, err)
		}
		return fmt.Errorf("listen on http-addr %s: %w", cfg.HTTPAddr, err)
	}
	srv := httpServer(api.Handler(), cfg.HTTPReadTimeout)
	srv.RegisterOnShutdown(api.CloseStreams) // listener streams last as long as their clients
	if addr := cfg.PprofListen(); addr != "" {
		if err := startPprof(gctx, g, addr, cfg.HTTPReadTimeout, log); err != nil {
			_ = ln.Close()
			return err
		}
	}

	g.Go(func() error { return guard.Run(gctx) })
	g.Go(func() error { return subs.Run(gctx) })
	if indexer != nil {
		g.Go(func() error { return indexer.Run(gctx) })
	}
	g.Go(func() error { return queue.Run(gctx) })
	g.Go(func() error { return purger.Run(gctx) })
	g.Go(func() error { return subs.RunListenerSweeper(gctx, cfg.ListenGrace/4) })
	g.Go(func() error {
		select { // route nothing before the subscription mirror has caught up
		case <-subs.Ready():
		case <-gctx.Done():
			return nil
		}
		return disp.Run(gctx)
	})
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	log.Info().Str("http_addr", ln.Addr().String()).Str("nats", natsDescription(cfg, conn)).
		Str("data_dir", cfg.DataDir).Msg("webhookd started")
	err = g.Wait()
	log.Info().Err(err).Msg("webhookd stopped")
	return err
}

// httpServer returns the server of an HTTP listener: a request's headers
// must arrive within 10 s (or readTimeout if shorter), the whole request,
// body included, within readTimeout, or the connection is closed; an idle
// keep-alive connection is closed after 2 min. readTimeout does not cut a
// handler that works long after reading its body, nor a response being
// written: net/http lifts the read deadline once the body is read.
func httpServer(h http.Handler, readTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler: h, ReadHeaderTimeout: min(10*time.Second, readTimeout), ReadTimeout: readTimeout,
		IdleTimeout: 2 * time.Minute,
	}
}

// setMemoryLimit sets the Go heap's soft limit (which covers the embedded
// NATS server too: it runs in this process) to limit, unless GOMEMLIMIT
// set one, and returns what puts the previous limit back.
func setMemoryLimit(limit int64, log zerolog.Logger) (restore func()) {
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		log.Info().Str("gomemlimit", v).Msg("GOMEMLIMIT sets the Go memory limit; --memory-limit is ignored")
		return func() {}
	}
	if limit <= 0 {
		return func() {}
	}
	prev := debug.SetMemoryLimit(limit)
	log.Info().Str("memory_limit", config.FormatSize(limit)).Msg("Go memory soft limit set")
	return func() { debug.SetMemoryLimit(prev) }
}

// wantsVersion reports whether args ask for --version (or -version), before
// any "--" that ends the flags.
func wantsVersion(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--version", "-version":
			return true
		}
	}
	return false
}

// closeTo reports whether a typed word is a likely typo of name: at most two
// edits (insertions, deletions, substitutions) away.
func closeTo(typed, name string) bool {
	prev := make([]int, len(name)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(typed); i++ {
		cur := make([]int, len(name)+1)
		cur[0] = i
		for j := 1; j <= len(name); j++ {
			cost := 1
			if typed[i-1] == name[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(name)] <= 2
}

func natsDescription(cfg config.Config, conn *jetstream.Conn) string {
	if cfg.NATSURL != "" {
		return "external"
	}
	return "embedded " + conn.ClientURL()
}

func newLogger(cfg config.Config, out io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("log-level: %w", err)
	}
	if cfg.LogFormat == "console" {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger(), nil
}

// buildInfo returns the main module's version and VCS revision, as the Go
// toolchain stamped them ("" when it did not).
func buildInfo() (version, revision string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return bi.Main.Version, revision
}

// routable is the catalog but the ping event, which only the ping command
// sends to one endpoint: published on NATS, it is rejected, not routed.
func routable(types []string) []string {
	return slices.DeleteFunc(types, func(t string) bool { return t == admin.EventPing })
}

// eventSchemas loads --event-schemas; with none given it returns nil.
func eventSchemas(dir string) (*schema.Set, error) {
	if dir == "" {
		return nil, nil
	}
	return schema.Load(dir, config.ValidEventType)
}

// withSchemaTypes adds to the catalog the types that have a schema.
func withSchemaTypes(catalog []string, schemas *schema.Set) []string {
	for _, t := range schemas.Types() {
		if !slices.Contains(catalog, t) {
			catalog = append(catalog, t)
		}
	}
	return catalog
}

func policy(b config.Backoff) *delivery.Policy {
	if b.Exponential() {
		return delivery.Exponential(b.Initial, b.Max, b.Retries, b.Jitter, nil)
	}
	return delivery.Schedule(b.Delays...)
}

// onceMore runs fn, and once more if it found the bbolt file damaged: the
// file was replaced by an empty one, where fn starts afresh.
func onceMore(fn func() error) error {
	if err := fn(); !errors.Is(err, boltfile.ErrDamaged) {
		return err
	}
	return fn()
}

// replicaID returns this data dir's replica id, creating it on first start
// (and after its file was found damaged at start).
func replicaID(db *boltfile.File) (string, error) {
	var id string
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("meta"))
		if err != nil {
			return err
		}
		if v := b.Get([]byte("replica_id")); v != nil {
			id = string(v)
			return nil
		}
		id = uuid.NewString()[:8]
		return b.Put([]byte("replica_id"), []byte(id))
	})
	if err != nil {
		return "", fmt.Errorf("replica id: %w", err)
	}
	return id, nil
}

// putReplicaID writes id into a file that replaced a damaged one, so the
// replica keeps its id (and its AUDIT consumer) while it runs.
func putReplicaID(tx *bolt.Tx, id string) error {
	b, err := tx.CreateBucketIfNotExists([]byte("meta"))
	if err != nil {
		return err
	}
	return b.Put([]byte("replica_id"), []byte(id))
}

// checkDataDir refuses a data dir that others could write to: they could
// replace the bbolt file, the NATS store or the admin token.
func checkDataDir(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("data dir %s is not a directory", dir)
	}
	if perm := info.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("data dir %s is writable by its group or others (mode %04o); fix with: chmod 700 %s", dir, perm, dir)
	}
	return nil
}

// secretKey returns the key that encrypts subscription secrets at rest, from
// --secret-key-file or WEBHOOKD_SECRET_KEY, or nil when neither is set. Its
// errors never include the key.
func secretKey(cfg config.Config) (*subscriptions.Key, error) {
	b64, from := cfg.SecretKey, config.EnvSecretKey
	switch {
	case cfg.SecretKeyFile != "":
		b, err := os.ReadFile(cfg.SecretKeyFile)
		if err != nil {
			return nil, fmt.Errorf("secret-key-file: %w", err)
		}
		b64, from = string(b), "secret-key-file "+cfg.SecretKeyFile
	case b64 == "":
		return nil, nil
	}
	key, err := subscriptions.ParseKey(b64)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return key, nil
}

// reseal rewrites the subscription bucket the first time this replica runs
// with key, so that no plaintext secret is left in the bucket's stream
// files (see subscriptions.Store.Reseal).
func reseal(ctx context.Context, subs *subscriptions.Store, conn *jetstream.Conn, key *subscriptions.Key, log zerolog.Logger) error {
	rep, err := subs.Reseal(ctx, conn.JS)
	if err != nil {
		return err
	}
	switch {
	case !rep.Done:
	case rep.Clean:
		log.Info().Str("key_id", key.ID()).Int("records", rep.Records).Int("tombstones", rep.Tombstones).
			Uint64("messages_purged", rep.Purged).
			Msg("subscription bucket resealed: every secret encrypted, old revisions and deleted records purged from its files")
	default:
		log.Warn().Str("key_id", key.ID()).Int("records", rep.Records).Int("tombstones", rep.Tombstones).
			Uint64("messages_purged", rep.Purged).
			Msg("subscription bucket resealed, but another replica wrote to it meanwhile: old bytes may remain in its last file block; tried again at the next start")
	}
	return nil
}

// tokenFile is where a generated admin token is kept, readable only by its owner.
const tokenFile = "admin-token"

// adminToken returns the configured token (its length checked by config), or
// the one generated into the data dir on first start. A token file that its
// group or others may read or write, or whose token is shorter than
// config.MinAdminTokenLen or too predictable (config.WeakToken), is refused. The token itself is never logged.
func adminToken(cfg config.Config, log zerolog.Logger) (string, error) {
	if cfg.AdminToken != "" {
		return cfg.AdminToken, nil
	}
	path := filepath.Join(cfg.DataDir, tokenFile)
	t, err := readTokenFile(path)
	if err != nil {
		return "", err
	}
	if t != "" {
		log.Info().Str("token_file", path).Msg("admin token read from the data dir")
		return t, nil
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	t = hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	log.Info().Str("token_file", path).Msg("admin token generated; webhookctl reads it with --data-dir, or pass it with --token")
	return t, nil
}

// readTokenFile returns the token in path, or "" when there is none (no
// file, or an empty one).
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o066 != 0 {
		return "", fmt.Errorf("admin token file %s is readable or writable by its group or others (mode %04o); fix with: chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4<<10))
	if err != nil {
		return "", fmt.Errorf("read admin token %s: %w", path, err)
	}
	t := strings.TrimSpace(string(b))
	if t != "" && len(t) < config.MinAdminTokenLen { // never echo the token
		return "", fmt.Errorf("admin token in %s is %d bytes, want at least %d: replace it (e.g. openssl rand -hex 32 > %s) or delete it to have one generated",
			path, len(t), config.MinAdminTokenLen, path)
	}
	if why := config.WeakToken(t); why != "" {
		return "", fmt.Errorf("admin token in %s is too predictable (%s): replace it (e.g. openssl rand -hex 32 > %s) or delete it to have one generated",
			path, why, path)
	}
	return t, nil
}
