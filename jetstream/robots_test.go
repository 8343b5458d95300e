package jetstream_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream"
)

// A subject with an empty token matches no permission and no stream: the
// robot must hear so at once, not wait out its publish timeout.
func TestMalformedEventSubjectsAreRefusedPromptly(t *testing.T) {
	t.Parallel()
	users, kinds := writeUsers(t)
	conn := openEmbedded(t, jetstream.Options{UsersFile: users, AllowAnonymous: true})
	for _, kind := range []string{"anonymous", "password"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r := connectRobot(t, conn.ClientURL(), kinds[kind]...)
			for _, subject := range []string{"events..task", "events.task.", "events.task..done"} {
				// nats.go retries a publish that met no responders twice,
				// 250 ms apart: about half a second in all.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				start := time.Now()
				_, err := r.js.Publish(ctx, subject, []byte(`{}`))
				cancel()
				require.ErrorIs(t, err, natsjs.ErrNoStreamResponse, subject)
				require.Less(t, time.Since(start), 2*time.Second, "%s: refused promptly", subject)

				start = time.Now()
				_, err = r.nc.Request(subject, []byte(`{}`), 5*time.Second)
				require.ErrorIs(t, err, nats.ErrNoResponders, subject)
				require.Less(t, time.Since(start), time.Second, "%s: a plain request is refused at once", subject)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := r.js.Publish(ctx, jetstream.EventSubject("task.created"), []byte(`{}`))
			require.NoError(t, err, "the connection still publishes events")

			s, err := conn.JS.Stream(ctx, jetstream.StreamEvents)
			require.NoError(t, err)
			info, err := s.Info(ctx, natsjs.WithSubjectFilter(">"))
			require.NoError(t, err)
			for subject := range info.State.Subjects {
				require.Equal(t, "events.task.created", subject, "nothing malformed was stored")
			}
		})
	}
}

// Robots have no publish allow list (see robotPublishDeny): their account
// is what confines them. Every subscription the server keeps in a robot
// account, but the robots' own inboxes, must be the events import or be
// denied to robots, so an import a newer nats-server adds cannot open a way
// out unnoticed.
func TestRobotAccountsLeadOnlyToEvents(t *testing.T) {
	t.Parallel()
	users, kinds := writeUsers(t)
	conn := openEmbedded(t, jetstream.Options{UsersFile: users, AllowAnonymous: true})
	robots := map[uint64]bool{}
	for _, opts := range kinds {
		r := connectRobot(t, conn.ClientURL(), opts...)
		_, err := r.nc.SubscribeSync("_INBOX.x")
		require.NoError(t, err)
		require.NoError(t, r.nc.Flush())
		cid, err := r.nc.GetClientID()
		require.NoError(t, err)
		robots[cid] = true
	}
	deny := jetstream.RobotPublishDeny()
	accounts := 0
	connz, err := conn.Server().Connz(&server.ConnzOptions{Username: true})
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, c := range connz.Conns {
		if !robots[c.Cid] || seen[c.Account] {
			continue
		}
		seen[c.Account] = true
		accounts++
		sz, err := conn.Server().Subsz(&server.SubszOptions{Account: c.Account, Subscriptions: true, Limit: 10_000})
		require.NoError(t, err)
		require.NotEmpty(t, sz.Subs)
		for _, s := range sz.Subs {
			if robots[s.Cid] || s.Subject == jetstream.EventsPrefix+">" {
				continue
			}
			covered := false
			for _, d := range deny {
				covered = covered || server.SubjectMatchesFilter(s.Subject, d)
			}
			require.True(t, covered, "account %s: robots may publish to %q, which the server subscribes to", c.Account, s.Subject)
		}
	}
	require.NotZero(t, accounts)
}

// Each named robot has an account of its own: a robot subscribed to every
// inbox sees none of another robot's publish acks, and both still get their
// own. Anonymous robots share one account and see each other's (documented).
func TestRobotsCannotReadEachOthersAcks(t *testing.T) {
	t.Parallel()
	users, kinds := writeUsers(t)
	conn := openEmbedded(t, jetstream.Options{UsersFile: users, AllowAnonymous: true})

	// snoop subscribes to every inbox a robot may subscribe to.
	snoop := func(r *robot) *nats.Subscription {
		sub, err := r.nc.SubscribeSync("_INBOX.>")
		require.NoError(t, err)
		require.NoError(t, r.nc.Flush())
		return sub
	}
	publish := func(r *robot, id string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ack, err := r.js.Publish(ctx, jetstream.EventSubject("task.created"), []byte(`{}`), natsjs.WithMsgID(id))
		require.NoError(t, err, id)
		require.Equal(t, jetstream.StreamEvents, ack.Stream)
	}
	// seen reports whether sub got anything; the publish that would have
	// reached it was acked before this flush's round trip began.
	seen := func(r *robot, sub *nats.Subscription) int {
		require.NoError(t, r.nc.Flush())
		n, _, err := sub.Pending()
		require.NoError(t, err)
		return n
	}

	names := []string{"password", "bcrypt", "nkey", "anonymous"}
	for _, spy := range names {
		for _, victim := range names {
			if spy == victim {
				continue
			}
			s := connectRobot(t, conn.ClientURL(), kinds[spy]...)
			v := connectRobot(t, conn.ClientURL(), kinds[victim]...)
			sub := snoop(s)
			publish(v, "from-"+victim+"-to-"+spy)
			require.Zero(t, seen(s, sub), "%s robot saw %s robot's publish ack", spy, victim)
			require.NoError(t, sub.Unsubscribe())
			publish(s, "own-"+spy+"-"+victim) // the snooper's own acks still arrive
		}
	}

	a, b := connectRobot(t, conn.ClientURL()), connectRobot(t, conn.ClientURL())
	sub := snoop(a)
	publish(b, "anonymous-b")
	require.Equal(t, 1, seen(a, sub), "anonymous robots share one account, acks included")
}

func TestUserNamedLikeAnotherRobotsNKeyIsRefused(t *testing.T) {
	t.Parallel()
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "users.yaml")
	require.NoError(t, os.WriteFile(path, []byte("users:\n  - nkey: "+pub+"\n  - user: "+pub+"\n    password: x\n"), 0o600))
	_, err = jetstream.Open(context.Background(), jetstream.Options{StoreDir: t.TempDir(), Listen: "127.0.0.1:-1", UsersFile: path},
		zerolog.New(zerolog.NewTestWriter(t)))
	require.ErrorContains(t, err, "two robots would share the account ROBOT_"+pub)
}
