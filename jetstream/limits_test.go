package jetstream_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream"
)

// dial connects as a robot would, without the test helper's cleanup, and
// returns the error the server answered with.
func dial(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	nc, err := nats.Connect(url, append(opts, nats.NoReconnect())...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	users, kinds := writeUsers(t)
	// A refusal over a limit is no authentication failure: it must not make
	// the address wait (a delay this long would stall the test).
	conn := openEmbedded(t, jetstream.Options{UsersFile: users, AllowAnonymous: true, MaxConnections: 8, MaxRobotConnections: 2,
		AuthFailureDelay: time.Minute})
	url := conn.ClientURL()
	start := time.Now()

	// Per robot: each named robot has its own two; anonymous robots share two.
	for _, kind := range []string{"password", "anonymous"} {
		for range 2 {
			_, err := dial(t, url, kinds[kind]...)
			require.NoError(t, err, kind)
		}
		_, err := dial(t, url, kinds[kind]...)
		require.ErrorIs(t, err, nats.ErrMaxAccountConnectionsExceeded, kind)
	}
	_, err := dial(t, url, kinds["bcrypt"]...)
	require.NoError(t, err, "another robot is not held back by the first one's limit")
	require.Less(t, time.Since(start), 10*time.Second, "refusals over a limit did not slow the address down")

	// In all: webhookd's own connection, 2 + 2 + 1 robots, and 2 more.
	nk1, err := dial(t, url, kinds["nkey"]...)
	require.NoError(t, err)
	_, err = dial(t, url, kinds["nkey"]...)
	require.NoError(t, err)
	// The server sends -ERR and closes at once: the client sees the error
	// (nats.go words it two ways, depending on when it reads it) or the
	// closed connection.
	_, err = dial(t, url, kinds["bcrypt"]...)
	require.Error(t, err, "the server's total")
	require.True(t, strings.Contains(err.Error(), "maximum connections exceeded") || strings.Contains(err.Error(), "broken pipe") ||
		strings.Contains(err.Error(), "connection reset") || errors.Is(err, io.EOF), "%v", err)
	connz, err := conn.Server().Connz(nil)
	require.NoError(t, err)
	require.Equal(t, 8, connz.NumConns)

	nk1.Close()
	require.Eventually(t, func() bool {
		nc, err := nats.Connect(url, append(kinds["bcrypt"], nats.NoReconnect())...)
		if err != nil {
			return false
		}
		nc.Close()
		return true
	}, 5*time.Second, 20*time.Millisecond, "a closed connection frees its place")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = conn.JS.Publish(ctx, jetstream.EventSubject("task.created"), []byte(`{}`))
	require.NoError(t, err, "webhookd's own connection is unaffected")
}

func TestRobotSubscriptionLimit(t *testing.T) {
	t.Parallel()
	conn := openEmbedded(t, jetstream.Options{MaxRobotSubscriptions: 3})
	r := connectRobot(t, conn.ClientURL())
	for _, s := range []string{"_INBOX.a", "_INBOX.b"} { // the JetStream context's own makes three
		_, err := r.nc.SubscribeSync(s)
		require.NoError(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := r.js.Publish(ctx, jetstream.EventSubject("task.created"), []byte(`{}`))
	require.NoError(t, err, "publishing with acks works within the limit")
	_, err = r.nc.SubscribeSync("_INBOX.c")
	require.NoError(t, err, "the refusal arrives asynchronously")
	select {
	case err := <-r.errs:
		require.ErrorIs(t, err, nats.ErrMaxSubscriptionsExceeded)
	case <-time.After(5 * time.Second):
		t.Fatal("a fourth subscription was accepted")
	}

	for i := range 10 {
		_, err := conn.NC.SubscribeSync(jetstream.InboxPrefix + ".own." + string(rune('a'+i)))
		require.NoError(t, err)
	}
	require.NoError(t, conn.NC.Flush())
	require.True(t, conn.NC.IsConnected(), "webhookd's own connection has no subscription limit")
	_, err = conn.JS.Publish(ctx, jetstream.EventSubject("task.created"), []byte(`{}`))
	require.NoError(t, err)
}

func TestServerLimitsAreSet(t *testing.T) {
	t.Parallel()
	conn := openEmbedded(t, jetstream.Options{MaxConnections: 100, MaxPending: 8 << 20})
	v, err := conn.Server().Varz(&server.VarzOptions{})
	require.NoError(t, err)
	require.Equal(t, 100, v.MaxConn)
	require.Equal(t, int64(8<<20), v.MaxPending)
}

// syncLog is a zerolog destination tests can read while the server writes.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Issue 22, item 4: 200 wrong passwords took 0.13 s. Failures are now logged
// at warn with the address, and an address that failed is checked at most
// once per delay, however many connections it opens.
func TestAuthFailuresAreSlowedAndLogged(t *testing.T) {
	t.Parallel()
	users, kinds := writeUsers(t)
	const delay = 200 * time.Millisecond
	logs := &syncLog{}
	conn, err := jetstream.Open(context.Background(), jetstream.Options{
		StoreDir: t.TempDir(), Listen: "127.0.0.1:-1", UsersFile: users, AuthFailureDelay: delay,
	}, zerolog.New(logs))
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	url := conn.ClientURL()

	start := time.Now()
	for range 4 {
		_, err := dial(t, url, nats.UserInfo("robot-plain", "guess"))
		require.ErrorIs(t, err, nats.ErrAuthorization)
	}
	require.GreaterOrEqual(t, time.Since(start), 3*delay, "the second to fourth guesses waited their turn")
	lines := strings.Count(logs.String(), `"message":"nats authentication failed"`)
	require.Equal(t, 4, lines, "one warn line per failure")
	require.Contains(t, logs.String(), `"level":"warn","component":"nats-auth","remote":"127.0.0.1:`)
	require.Contains(t, logs.String(), `"user":"robot-plain"`)
	require.NotContains(t, logs.String(), "guess", "passwords are never logged")

	// Many connections at once: only a few delays' worth are checked, the
	// rest are refused unchecked.
	var wg sync.WaitGroup
	start = time.Now()
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := nats.Connect(url, nats.UserInfo("robot-plain", "guess"), nats.NoReconnect())
			if err == nil {
				nc.Close()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	checked := strings.Count(logs.String(), `"message":"nats authentication failed"`) - lines
	// One per delay that passed, plus those queued up to three delays ahead.
	require.LessOrEqual(t, checked, int(elapsed/delay)+4, "checked %d in %s", checked, elapsed)
	require.Less(t, checked, 20, "some attempts were refused unchecked")

	// The right password from the same address still gets in, after its turn.
	require.Eventually(t, func() bool {
		nc, err := nats.Connect(url, append(kinds["password"], nats.NoReconnect())...)
		if err != nil {
			return false
		}
		nc.Close()
		return true
	}, 5*time.Second, 50*time.Millisecond)
}
