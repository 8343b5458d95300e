package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// openEmbedded starts webhookd's embedded server on a random loopback port
// (unless o says otherwise), provisions it and closes it when the test ends.
func openEmbedded(t *testing.T, o jetstream.Options) *jetstream.Conn {
	t.Helper()
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:-1"
	}
	ctx := context.Background()
	conn, err := jetstream.Open(ctx, o, zerolog.New(zerolog.NewTestWriter(t)))
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	require.NoError(t, jetstream.Provision(ctx, conn.JS, jstest.Provisioning()))
	return conn
}

// robot is a client of the embedded server, as a robot would connect; errs
// receives the server's asynchronous errors (permission violations).
type robot struct {
	nc   *nats.Conn
	js   natsjs.JetStream
	errs chan error
}

func connectRobot(t testing.TB, url string, opts ...nats.Option) *robot {
	t.Helper()
	r := &robot{errs: make(chan error, 100)}
	opts = append(slices.Clone(opts), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case r.errs <- err:
		default:
		}
	}))
	nc, err := nats.Connect(url, opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	r.nc = nc
	r.js, err = natsjs.New(nc)
	require.NoError(t, err)
	return r
}

// refused waits for the server's permission violation naming subject.
func (r *robot) refused(t *testing.T, subject string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case err := <-r.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
				return
			}
		case <-timeout:
			t.Fatalf("no permission violation for %q", subject)
		}
	}
}

// robotKinds are the ways a robot authenticates, served by one users file
// plus anonymous access.
type robotKinds map[string][]nats.Option

// writeUsers writes a users file with a plaintext password user, a bcrypt
// user and an NKey user, and returns it with the client options of each.
func writeUsers(t *testing.T) (string, robotKinds) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("bcrypt-secret"), bcrypt.MinCost)
	require.NoError(t, err)
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "users.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`users:
  - user: robot-plain
    password: plain-secret
  - user: robot-bcrypt
    password: '%s'
  - nkey: %s
`, hash, pub)), 0o600))
	return path, robotKinds{
		"anonymous": nil,
		"password":  {nats.UserInfo("robot-plain", "plain-secret")},
		"bcrypt":    {nats.UserInfo("robot-bcrypt", "bcrypt-secret")},
		"nkey":      {nats.Nkey(pub, kp.Sign)},
	}
}

func TestRobotsPublishEvents(t *testing.T) {
	t.Parallel()
	users, kinds := writeUsers(t)
	conn := openEmbedded(t, jetstream.Options{UsersFile: users, AllowAnonymous: true})
	for kind, opts := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r := connectRobot(t, conn.ClientURL(), opts...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			body := []byte(`{"task_id":"T-` + kind + `"}`)
			ack, err := r.js.Publish(ctx, jetstream.EventSubject("task.completed"), body, natsjs.WithMsgID("evt-"+kind))
			require.NoError(t, err)
			require.Equal(t, jetstream.StreamEvents, ack.Stream)

			s, err := conn.JS.Stream(ctx, jetstream.StreamEvents)
			require.NoError(t, err)
			m, err := s.GetMsg(ctx, ack.Sequence)
			require.NoError(t, err)
			require.Equal(t, "events.task.completed", m.Subject)
			require.Equal(t, body, m.Data)
			require.Equal(t, "evt-"+kind, m.Header.Get(natsjs.MsgIDHeader), "the publisher's id survives the crossing into webhookd's account")

			again, err := r.js.Publish(ctx, jetstream.EventSubject("task.completed"), body, natsjs.WithMsgID("evt-"+kind))
			require.NoError(t, err)
			require.True(t, again.Duplicate, "a retried publish is deduplicated")
		})
	}
}

func TestRobotsAreConfinedToPublishingEvents(t *testing.T) {
	t.Parallel()
	users, kinds := writeUsers(t)
	for kind, opts := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			conn := openEmbedded(t, jetstream.Options{UsersFile: users, AllowAnonymous: true})
			ctx := context.Background()
			kv, err := conn.JS.KeyValue(ctx, jetstream.BucketSubscriptions)
			require.NoError(t, err)
			_, err = kv.Put(ctx, "sub-1", []byte(`{"secret":"whsec_do-not-leak"}`))
			require.NoError(t, err)
			r := connectRobot(t, conn.ClientURL(), opts...)

			// Snooping: inboxes are the one thing a robot may subscribe to,
			// and webhookd's KV reads and pull deliveries must not be there.
			snoop, err := r.nc.SubscribeSync("_INBOX.>")
			require.NoError(t, err)
			require.NoError(t, r.nc.Flush())
			_, err = conn.JS.Publish(ctx, jetstream.EventSubject("task.created"), []byte(`{}`))
			require.NoError(t, err)
			e, err := kv.Get(ctx, "sub-1")
			require.NoError(t, err)
			require.Contains(t, string(e.Value()), "whsec_")
			router, err := conn.JS.Consumer(ctx, jetstream.StreamEvents, jetstream.ConsumerRouter)
			require.NoError(t, err)
			batch, err := router.Fetch(1, natsjs.FetchMaxWait(5*time.Second))
			require.NoError(t, err)
			for m := range batch.Messages() {
				require.NoError(t, m.Ack())
			}
			require.NoError(t, batch.Error())
			// Whatever reached webhookd was routed to the robot's subscription
			// too, before this round trip completes.
			require.NoError(t, r.nc.Flush())
			n, _, err := snoop.Pending()
			require.NoError(t, err)
			require.Zero(t, n, "a robot sees none of webhookd's replies")
			require.NoError(t, snoop.Unsubscribe())

			// The JetStream API, through the client library: an error, and the
			// server names the refused subject.
			short := func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 500*time.Millisecond)
			}
			api := []struct {
				subject string
				call    func(context.Context) error
			}{
				{"$JS.API.STREAM.NAMES", func(ctx context.Context) error {
					names := r.js.StreamNames(ctx)
					for range names.Name() {
					}
					return names.Err()
				}},
				{"$JS.API.STREAM.INFO.EVENTS", func(ctx context.Context) error { _, err := r.js.Stream(ctx, jetstream.StreamEvents); return err }},
				{"$JS.API.CONSUMER.INFO.DELIVERIES.workers", func(ctx context.Context) error {
					_, err := r.js.Consumer(ctx, jetstream.StreamDeliveries, jetstream.ConsumerWorkers)
					return err
				}},
				{"$JS.API.STREAM.INFO.KV_subscriptions", func(ctx context.Context) error {
					_, err := r.js.KeyValue(ctx, jetstream.BucketSubscriptions)
					return err
				}},
				{"$JS.API.STREAM.DELETE.EVENTS", func(ctx context.Context) error { return r.js.DeleteStream(ctx, jetstream.StreamEvents) }},
			}
			for _, a := range api {
				cctx, cancel := short()
				require.Error(t, a.call(cctx), a.subject)
				cancel()
				r.refused(t, a.subject)
			}
			// Reading the bucket directly, without the client library.
			_, err = r.nc.Request("$JS.API.DIRECT.GET.KV_subscriptions.$KV.subscriptions.sub-1", nil, 500*time.Millisecond)
			require.Error(t, err)
			r.refused(t, "$JS.API.DIRECT.GET.KV_subscriptions.$KV.subscriptions.sub-1")

			// Subjects that are webhookd's own.
			canary := make(chan *nats.Msg, 100)
			for _, subject := range []string{"deliveries.>", "audit.>", "events.webhook.>", "$KV.>"} {
				sub, err := conn.NC.ChanSubscribe(subject, canary)
				require.NoError(t, err)
				defer func() { require.NoError(t, sub.Unsubscribe()) }()
			}
			require.NoError(t, conn.NC.Flush())
			for _, subject := range []string{"deliveries.x", "audit.x", "events.webhook.x", "$KV.subscriptions.sub-1", "_WEBHOOKD_INBOX.x"} {
				require.NoError(t, r.nc.Publish(subject, []byte(`{}`)))
				r.refused(t, subject)
			}
			for _, subject := range []string{">", "events.>", "$KV.subscriptions.>", "_WEBHOOKD_INBOX.>"} {
				_, err := r.nc.SubscribeSync(subject)
				require.NoError(t, err, "the refusal arrives asynchronously")
				r.refused(t, subject)
			}
			// A reply subject is not a way around the permissions: JetStream
			// acks an event to the robot's own account, not into webhookd's.
			for _, reply := range []string{"deliveries.x", "audit.x", "events.webhook.x", "$KV.subscriptions.sub-1"} {
				require.NoError(t, r.nc.PublishMsg(&nats.Msg{Subject: "events.task.failed", Reply: reply, Data: []byte(`{}`)}))
			}
			// The acks of those publishes left the stream before this one's.
			_, err = r.js.Publish(ctx, jetstream.EventSubject("task.failed"), []byte(`{}`))
			require.NoError(t, err)
			require.NoError(t, conn.NC.Flush())
			select {
			case m := <-canary:
				t.Fatalf("a robot wrote into webhookd's subjects: %s %q", m.Subject, m.Data)
			default:
			}

			for name, want := range map[string]uint64{jetstream.StreamDeliveries: 0, jetstream.StreamAudit: 0} {
				s, err := conn.JS.Stream(ctx, name)
				require.NoError(t, err)
				require.Equal(t, want, s.CachedInfo().State.Msgs, name)
			}
			e, err = kv.Get(ctx, "sub-1")
			require.NoError(t, err)
			require.Equal(t, uint64(1), e.Revision(), "the subscription record is untouched")
			events, err := conn.JS.Stream(ctx, jetstream.StreamEvents)
			require.NoError(t, err)
			_, err = events.GetLastMsgForSubject(ctx, "events.webhook.>")
			require.ErrorIs(t, err, natsjs.ErrMsgNotFound, "no forged operational event")
		})
	}
}

func TestOwnConnectionUsesItsInboxPrefix(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(t *testing.T) (*jetstream.Conn, *server.Server){
		"embedded": func(t *testing.T) (*jetstream.Conn, *server.Server) {
			conn := openEmbedded(t, jetstream.Options{})
			return conn, conn.Server()
		},
		"external": func(t *testing.T) (*jetstream.Conn, *server.Server) {
			ns := jstest.RunServer(t)
			conn, err := jetstream.Open(context.Background(), jetstream.Options{URL: ns.ClientURL()}, zerolog.New(zerolog.NewTestWriter(t)))
			require.NoError(t, err)
			t.Cleanup(conn.Close)
			require.NoError(t, jetstream.Provision(context.Background(), conn.JS, jstest.Provisioning()))
			return conn, ns.Server
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			conn, ns := open(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			kv, err := conn.JS.KeyValue(ctx, jetstream.BucketSubscriptions)
			require.NoError(t, err)
			w, err := kv.WatchAll(ctx)
			require.NoError(t, err)
			defer func() { require.NoError(t, w.Stop()) }()
			require.Nil(t, <-w.Updates(), "initial values done")
			_, err = kv.Put(ctx, "sub-1", []byte(`{}`))
			require.NoError(t, err)
			require.Equal(t, "sub-1", (<-w.Updates()).Key(), "the KV watcher works")

			router, err := conn.JS.Consumer(ctx, jetstream.StreamEvents, jetstream.ConsumerRouter)
			require.NoError(t, err)
			got := make(chan string, 1)
			cc, err := router.Consume(func(m natsjs.Msg) { got <- m.Subject(); _ = m.Ack() })
			require.NoError(t, err)
			defer cc.Stop()
			ackF, err := conn.JS.PublishAsync(jetstream.EventSubject("task.created"), []byte(`{}`))
			require.NoError(t, err)
			select {
			case <-ackF.Ok():
			case err := <-ackF.Err():
				t.Fatal(err)
			}
			require.Equal(t, "events.task.created", <-got, "the pull consumer works")

			connz, err := ns.Connz(&server.ConnzOptions{Subscriptions: true})
			require.NoError(t, err)
			var subs []string
			for _, c := range connz.Conns {
				if c.Name == "webhookd" {
					subs = append(subs, c.Subs...)
				}
			}
			require.GreaterOrEqual(t, len(subs), 3, "watcher, consumer and publish acks: %v", subs)
			for _, s := range subs {
				require.True(t, strings.HasPrefix(s, jetstream.InboxPrefix+"."), "subscription %q is outside webhookd's inbox prefix", s)
			}
		})
	}
}

func TestOpenAuthRules(t *testing.T) {
	t.Parallel()
	users, kinds := writeUsers(t)
	log := zerolog.New(zerolog.NewTestWriter(t))

	t.Run("non-loopback without users file is refused", func(t *testing.T) {
		t.Parallel()
		for _, listen := range []string{"0.0.0.0:-1", ":-1", "example.com:-1"} {
			_, err := jetstream.Open(context.Background(), jetstream.Options{StoreDir: t.TempDir(), Listen: listen}, log)
			require.ErrorContains(t, err, "--nats-users-file", listen)
			require.ErrorContains(t, err, "--nats-allow-anonymous", listen)
			require.NotContains(t, err.Error(), "\n")
		}
	})
	t.Run("non-loopback with allow-anonymous", func(t *testing.T) {
		t.Parallel()
		conn := openEmbedded(t, jetstream.Options{Listen: "0.0.0.0:-1", AllowAnonymous: true})
		r := connectRobot(t, conn.ClientURL())
		_, err := r.js.Publish(context.Background(), jetstream.EventSubject("task.created"), []byte(`{}`))
		require.NoError(t, err)
	})
	t.Run("a users file turns anonymous off", func(t *testing.T) {
		t.Parallel()
		for _, listen := range []string{"0.0.0.0:-1", "127.0.0.1:-1"} {
			conn := openEmbedded(t, jetstream.Options{Listen: listen, UsersFile: users})
			_, err := nats.Connect(conn.ClientURL())
			require.ErrorIs(t, err, nats.ErrAuthorization, listen)
			_, err = nats.Connect(conn.ClientURL(), nats.UserInfo("robot-plain", "wrong"))
			require.ErrorIs(t, err, nats.ErrAuthorization, listen)
			_, err = nats.Connect(conn.ClientURL(), nats.UserInfo("webhookd", ""))
			require.ErrorIs(t, err, nats.ErrAuthorization, "webhookd's own user exists only in-process")
			r := connectRobot(t, conn.ClientURL(), kinds["nkey"]...)
			_, err = r.js.Publish(context.Background(), jetstream.EventSubject("task.created"), []byte(`{}`))
			require.NoError(t, err, listen)
		}
	})
}

func TestUsersFileValidation(t *testing.T) {
	t.Parallel()
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	account, err := nkeys.CreateAccount()
	require.NoError(t, err)
	accountPub, err := account.PublicKey()
	require.NoError(t, err)

	tests := []struct {
		name, body, want string
	}{
		{"empty file", "", "no users"},
		{"empty list", "users: []\n", "no users"},
		{"not yaml", "users: [\n", "yaml"},
		{"unknown key", "users:\n  - user: a\n    pasword: x\n", "pasword"},
		{"unknown top key", "robots: []\n", "robots"},
		{"empty entry", "users:\n  - {}\n", "users[0]: empty entry"},
		{"no password", "users:\n  - user: a\n", `users[0]: user "a" has no password`},
		{"no user", "users:\n  - password: secret-pw\n", "users[0]: password without user"},
		{"both kinds", "users:\n  - user: a\n    password: secret-pw\n    nkey: " + pub + "\n", "not both"},
		{"duplicate user", "users:\n  - {user: a, password: secret-pw}\n  - {user: a, password: secret-pw}\n", `users[1]: user "a" is listed twice`},
		{"duplicate nkey", "users:\n  - nkey: " + pub + "\n  - nkey: " + pub + "\n", "users[1]: nkey " + pub + " is listed twice"},
		{"reserved name", "users:\n  - {user: webhookd, password: secret-pw}\n", "reserved"},
		{"space in name", "users:\n  - {user: 'a b', password: secret-pw}\n", "spaces"},
		{"seed instead of key", "users:\n  - nkey: " + string(seed) + "\n", "private seed"},
		{"account key", "users:\n  - nkey: " + accountPub + "\n", "not a user public key"},
		{"garbage nkey", "users:\n  - nkey: UNOTAKEY\n", "not a user public key"},
		{"broken bcrypt", "users:\n  - {user: a, password: '$2a$10$secret-pw'}\n", "bcrypt"},
		{"json with a typo", `{"users": [{"user": "a", "passwd": "secret-pw"}]}`, "passwd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "users.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tt.body), 0o600))
			_, err := jetstream.Open(context.Background(), jetstream.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1", UsersFile: path}, zerolog.Nop())
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, path, "the error names the file")
			require.NotContains(t, err.Error(), "\n", "one line")
			require.NotContains(t, err.Error(), "secret-pw", "no password in errors")
			require.NotContains(t, err.Error(), string(seed), "no seed in errors")
		})
	}
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "missing.yaml")
		_, err := jetstream.Open(context.Background(), jetstream.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1", UsersFile: path}, zerolog.Nop())
		require.ErrorIs(t, err, os.ErrNotExist)
		require.ErrorContains(t, err, path)
	})
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "users.json")
		require.NoError(t, os.WriteFile(path, []byte(`{"users": [{"user": "a", "password": "secret-pw"}, {"nkey": "`+pub+`"}]}`), 0o600))
		conn := openEmbedded(t, jetstream.Options{UsersFile: path})
		r := connectRobot(t, conn.ClientURL(), nats.UserInfo("a", "secret-pw"))
		_, err := r.js.Publish(context.Background(), jetstream.EventSubject("task.created"), []byte(`{}`))
		require.NoError(t, err)
	})
}

func TestEmbeddedServerSettings(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		conn := openEmbedded(t, jetstream.Options{})
		js := conn.Server().JetStreamConfig()
		require.NotNil(t, js)
		require.False(t, js.SyncAlways)
		require.Equal(t, 2*time.Minute, js.SyncInterval, "the NATS default")
		r := connectRobot(t, conn.ClientURL())
		require.EqualValues(t, 1<<20, r.nc.MaxPayload(), "the NATS default")
	})
	t.Run("sync always", func(t *testing.T) {
		t.Parallel()
		conn := openEmbedded(t, jetstream.Options{SyncAlways: true})
		require.True(t, conn.Server().JetStreamConfig().SyncAlways)
	})
	t.Run("sync interval and max payload", func(t *testing.T) {
		t.Parallel()
		conn := openEmbedded(t, jetstream.Options{SyncInterval: time.Second, MaxPayload: 4096})
		require.Equal(t, time.Second, conn.Server().JetStreamConfig().SyncInterval)
		r := connectRobot(t, conn.ClientURL())
		require.EqualValues(t, 4096, r.nc.MaxPayload())
		_, err := r.js.Publish(context.Background(), jetstream.EventSubject("task.created"), make([]byte, 5000))
		require.ErrorIs(t, err, nats.ErrMaxPayload)
		_, err = r.js.Publish(context.Background(), jetstream.EventSubject("task.created"), make([]byte, 3000))
		require.NoError(t, err)
	})
	t.Run("bad values", func(t *testing.T) {
		t.Parallel()
		for want, o := range map[string]jetstream.Options{
			"max payload -1: want 0":    {MaxPayload: -1, Listen: "127.0.0.1:-1"},
			"sync interval -1s: want 0": {SyncInterval: -time.Second, Listen: "127.0.0.1:-1"},
			`listen address "4222"`:     {Listen: "4222"},
		} {
			o.StoreDir = t.TempDir()
			_, err := jetstream.Open(context.Background(), o, zerolog.Nop())
			require.ErrorContains(t, err, want)
		}
	})
}

// A store written before robots had their own account (everything in the
// global account) is still webhookd's after the upgrade.
func TestOpenKeepsAStoreFromBeforeAccounts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	require.NoError(t, err)
	old.Start()
	require.True(t, old.ReadyForConnections(10*time.Second))
	nc, err := nats.Connect(old.ClientURL())
	require.NoError(t, err)
	js, err := natsjs.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, jetstream.Provision(ctx, js, jstest.Provisioning()))
	_, err = js.Publish(ctx, jetstream.EventSubject("task.completed"), []byte(`{}`))
	require.NoError(t, err)
	nc.Close()
	old.Shutdown()
	old.WaitForShutdown()

	conn := openEmbedded(t, jetstream.Options{StoreDir: dir})
	s, err := conn.JS.Stream(ctx, jetstream.StreamEvents)
	require.NoError(t, err)
	require.EqualValues(t, 1, s.CachedInfo().State.Msgs)
}
