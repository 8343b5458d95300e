// Command webhookd is the webhook dispatcher daemon: it routes events
// published to NATS (events.<type>) to every subscribed HTTP endpoint, signed,
// with retries and an audit trail. Run "webhookd --help" for its flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sync/errgroup"

	"github.com/robotlab/webhookd/config"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/dispatcher"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/subscriptions"
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
// Logs go to stdout. It returns nil after a clean stop or --help.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout io.Writer) error {
	cfg, err := config.Load(args, lookupEnv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stdout)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}

	// The bbolt lock doubles as the data dir lock: nats-server does not lock
	// its store, so it must be taken before the embedded server starts.
	dbPath := filepath.Join(cfg.DataDir, "webhooks.db")
	db, err := bolt.Open(dbPath, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("data dir %s is in use by another webhookd (lock on %s)", cfg.DataDir, dbPath)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", dbPath, err)
	}
	defer db.Close()
	replica, err := replicaID(db)
	if err != nil {
		return err
	}
	log = log.With().Str("replica", replica).Logger()

	conn, err := jetstream.Open(ctx, jetstream.Options{
		URL: cfg.NATSURL, StoreDir: jetstream.StoreDir(cfg.DataDir), Listen: cfg.NATSListen, Name: "webhookd-" + replica,
	}, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := jetstream.Provision(ctx, conn.JS, jetstream.Provisioning{
		EventRetention: cfg.EventRetention, AuditRetention: cfg.Retention,
		AckWait: cfg.AckWait, MaxAckPending: cfg.MaxAckPending,
	}); err != nil {
		return err
	}
	kv, err := conn.JS.KeyValue(ctx, jetstream.BucketSubscriptions)
	if err != nil {
		return fmt.Errorf("open subscription bucket: %w", err)
	}
	subs, err := subscriptions.Open(kv, db, log)
	if err != nil {
		return err
	}
	store, err := delivery.OpenStore(db)
	if err != nil {
		return err
	}
	deliverer := delivery.NewDeliverer(delivery.Config{DefaultTimeout: cfg.DeliveryTimeout, AllowTargets: cfg.AllowTargets})
	defer deliverer.Close()
	disp, err := dispatcher.New(dispatcher.Config{
		Workers: cfg.Workers, ShutdownTimeout: cfg.ShutdownTimeout, AckWait: cfg.AckWait,
		EventTypes: cfg.AllEventTypes(),
	}, dispatcher.Deps{
		JS: conn.JS, Subscriptions: subs, Attempter: deliverer,
		Recorder: delivery.NewRecorder(conn.JS, store, replica), History: store, Policy: policy(cfg.RetryBackoff),
	}, log)
	if err != nil {
		return err
	}
	indexer := delivery.NewIndexer(delivery.IndexerConfig{Replica: replica, Retention: cfg.Retention}, conn.JS, store, log)

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on http-addr %s: %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{Handler: routes(conn, subs), ReadHeaderTimeout: 10 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return subs.Run(gctx) })
	g.Go(func() error { return indexer.Run(gctx) })
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

func policy(b config.Backoff) *delivery.Policy {
	if b.Exponential() {
		return delivery.Exponential(b.Initial, b.Max, b.Retries, b.Jitter, nil)
	}
	return delivery.Schedule(b.Delays...)
}

// replicaID returns this data dir's replica id, creating it on first start.
func replicaID(db *bolt.DB) (string, error) {
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

// routes serves the health endpoints, which need no token.
func routes(conn *jetstream.Conn, subs *subscriptions.Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-subs.Ready():
		default:
			writeText(w, http.StatusServiceUnavailable, "subscription mirror catching up")
			return
		}
		if !conn.NC.IsConnected() {
			writeText(w, http.StatusServiceUnavailable, "nats disconnected")
			return
		}
		writeText(w, http.StatusOK, "ready")
	})
	return mux
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}
