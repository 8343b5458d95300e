package delivery_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/subscriptions"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

type received struct {
	header http.Header
	body   []byte
}

// receiver is an httptest server that answers with status and hands every
// request to the returned channel.
func receiver(t *testing.T, handler func(w http.ResponseWriter)) (*httptest.Server, <-chan received) {
	t.Helper()
	ch := make(chan received, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- received{r.Header.Clone(), body}
		handler(w)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func testJob(t *testing.T, subID string) delivery.Job {
	t.Helper()
	ev := delivery.Event{ID: "evt-1", Type: "task.completed", Timestamp: time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC),
		Data: json.RawMessage(`{"task_id": "T123", "robot_id": "R001"}`)}
	return delivery.NewJob(ev, subID, time.Now())
}

func testSub(t *testing.T, url string) subscriptions.Subscription {
	t.Helper()
	secret, err := signature.NewSecret()
	require.NoError(t, err)
	return subscriptions.Subscription{ID: "sub-1", URL: url, Events: []string{"task.completed"}, Active: true, Secret: secret}
}

func TestAttemptSendsTheContract(t *testing.T) {
	t.Parallel()
	srv, got := receiver(t, func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted); _, _ = io.WriteString(w, "thanks") })
	d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: 5 * time.Second, AllowTargets: loopback})
	sub := testSub(t, srv.URL+"/hook")
	job := testJob(t, sub.ID).Retry(time.Time{})

	res := d.Attempt(context.Background(), job, sub)
	require.Equal(t, delivery.OutcomeSucceeded, res.Outcome)
	require.Equal(t, http.StatusAccepted, res.StatusCode)
	require.Equal(t, "thanks", string(res.Response))

	r := <-got
	require.JSONEq(t, `{"id":"evt-1","event":"task.completed","timestamp":"2024-01-15T10:30:00Z","data":{"task_id":"T123","robot_id":"R001"}}`, string(r.body))
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, "task.completed", r.header.Get("X-Webhook-Event"))
	require.Equal(t, sub.ID, r.header.Get("X-Webhook-ID"))
	require.Equal(t, job.ID, r.header.Get("X-Webhook-Delivery"))
	require.Equal(t, "2", r.header.Get("X-Webhook-Attempt"))
	require.Equal(t, job.ID, r.header.Get("webhook-id"))
	ts, err := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), time.Unix(ts, 0), time.Minute)

	// The seed signature, checked with the plain HMAC recipe, not our code.
	require.Equal(t, hmacHex(sub.Secret, r.body), r.header.Get("X-Webhook-Signature"))
	// The Standard Webhooks signature, checked with the reference library.
	wh, err := standardwebhooks.NewWebhook(sub.Secret)
	require.NoError(t, err)
	require.NoError(t, wh.Verify(r.body, r.header))
}

func TestAttemptFailures(t *testing.T) {
	t.Parallel()
	t.Run("status is data", func(t *testing.T) {
		t.Parallel()
		srv, _ := receiver(t, func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, strings.Repeat("x", 5000))
		})
		d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: 5 * time.Second, AllowTargets: loopback})
		res := d.Attempt(context.Background(), testJob(t, "s"), testSub(t, srv.URL))
		require.Equal(t, delivery.OutcomeFailed, res.Outcome)
		require.Equal(t, "http_503", res.Reason)
		require.Len(t, res.Response, 1024, "only the first KiB is kept")
		require.NoError(t, res.Err)
	})
	t.Run("redirect not followed", func(t *testing.T) {
		t.Parallel()
		target, hits := receiver(t, func(w http.ResponseWriter) {})
		srv, _ := receiver(t, func(w http.ResponseWriter) {
			w.Header().Set("Location", target.URL)
			w.WriteHeader(http.StatusFound)
		})
		d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: 5 * time.Second, AllowTargets: loopback})
		res := d.Attempt(context.Background(), testJob(t, "s"), testSub(t, srv.URL))
		require.Equal(t, "http_302", res.Reason)
		require.Empty(t, hits)
	})
	t.Run("timeout from the subscription", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		srv, _ := receiver(t, func(w http.ResponseWriter) { <-release })
		t.Cleanup(func() { close(release) })
		d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: time.Hour, AllowTargets: loopback})
		sub := testSub(t, srv.URL)
		sub.Timeout = 100 * time.Millisecond
		res := d.Attempt(context.Background(), testJob(t, "s"), sub)
		require.Equal(t, "timeout", res.Reason)
		require.Less(t, res.Duration, time.Hour)
	})
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: 5 * time.Second, AllowTargets: loopback})
		res := d.Attempt(context.Background(), testJob(t, "s"), testSub(t, url))
		require.Equal(t, "connection_refused", res.Reason)
	})
	t.Run("tls error", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
		srv.StartTLS()                                   // self-signed: not trusted
		t.Cleanup(srv.Close)
		d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: 5 * time.Second, AllowTargets: loopback})
		res := d.Attempt(context.Background(), testJob(t, "s"), testSub(t, srv.URL))
		require.Equal(t, "tls_error", res.Reason)
	})
	t.Run("internal target blocked, by literal IP and by name", func(t *testing.T) {
		t.Parallel()
		srv, hits := receiver(t, func(w http.ResponseWriter) {})
		d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: 5 * time.Second}) // no allow-targets
		res := d.Attempt(context.Background(), testJob(t, "s"), testSub(t, srv.URL))
		require.Equal(t, "blocked_target", res.Reason)
		byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
		res = d.Attempt(context.Background(), testJob(t, "s"), testSub(t, byName))
		require.Equal(t, "blocked_target", res.Reason)
		require.Empty(t, hits, "nothing reached the internal receiver")
	})
}

func TestPayloadRejectsNonObjects(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{`{}`, ` {"a":1} `, `{"nested":{"x":[1,2]}}`} {
		require.NoError(t, delivery.CheckData([]byte(ok)), ok)
	}
	for _, bad := range []string{``, `   `, `[]`, `"s"`, `42`, `null`, `{"a":`, `not json`, `{"a":1} trailing`, "{\"a\":\"\xff\"}"} {
		require.ErrorIs(t, delivery.CheckData([]byte(bad)), delivery.ErrNotObject, bad)
	}
	nested := func(n int) []byte { // an object n levels deep in all
		return []byte(`{"a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}`)
	}
	require.NoError(t, delivery.CheckData(nested(delivery.MaxDepth)))
	require.ErrorContains(t, delivery.CheckData(nested(delivery.MaxDepth+1)), "nested deeper",
		"Go's decoder refuses 10 000 levels, Python's near 1 000: such data would reach no receiver")
	require.NoError(t, delivery.CheckData([]byte(`{"s":"`+strings.Repeat("[{", 1000)+`\"]"}`)), "brackets in strings do not nest")
}

func TestAttemptBoundsWhatAReceiverSends(t *testing.T) {
	t.Parallel()
	t.Run("huge response headers", func(t *testing.T) {
		t.Parallel()
		srv, _ := receiver(t, func(w http.ResponseWriter) {
			for i := range 200 {
				w.Header().Set("X-Junk-"+strconv.Itoa(i), strings.Repeat("j", 4<<10))
			}
			w.WriteHeader(http.StatusOK)
		})
		d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: 5 * time.Second, AllowTargets: loopback})
		res := d.Attempt(context.Background(), testJob(t, "s"), testSub(t, srv.URL))
		require.Equal(t, delivery.OutcomeFailed, res.Outcome, "800 KiB of headers are refused, not read")
		require.ErrorContains(t, res.Err, "headers exceeded")
	})
	t.Run("Retry-After on 429 and 503", func(t *testing.T) {
		t.Parallel()
		for code, want := range map[int]time.Duration{429: 7 * time.Second, 503: 7 * time.Second, 500: 0} {
			srv, _ := receiver(t, func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(code)
			})
			d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: 5 * time.Second, AllowTargets: loopback})
			res := d.Attempt(context.Background(), testJob(t, "s"), testSub(t, srv.URL))
			require.Equal(t, want, res.RetryAfter, "status %d", code)
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"soon":                          0,
		"-5":                            0,
		"0":                             time.Second, // clamped up
		"30":                            30 * time.Second,
		"86400":                         time.Hour, // clamped down
		"99999999999999999999":          0,
		"Sun, 29 Nov 2026 12:02:00 GMT": 2 * time.Minute,
		"Sun, 29 Nov 2026 11:00:00 GMT": time.Second, // in the past
	} {
		require.Equal(t, want, delivery.ParseRetryAfter(in, now), "Retry-After %q", in)
	}
}

func TestJobTravelsUnchanged(t *testing.T) {
	t.Parallel()
	data := []byte(" {\"x\": \"<<<&&&>>> \\u00e9 é\"}\n")
	ev := delivery.Event{ID: "evt-9", Type: "alert.triggered", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC), Seq: 42, Data: data}
	job := delivery.NewJob(ev, "sub-1", time.Now())
	m := job.Msg("deliveries.sub-1")
	require.Equal(t, data, m.Data, "the message body is the event data, byte for byte")

	back, err := delivery.DecodeJob(m.Header, m.Data)
	require.NoError(t, err)
	require.Equal(t, job.ID, back.ID)
	require.Equal(t, 1, back.Attempt)
	require.True(t, job.EventTime.Equal(back.EventTime))

	env := back.Envelope()
	require.Equal(t, `{"id":"evt-9","event":"alert.triggered","timestamp":"2026-01-02T03:04:05Z","data":{"x": "<<<&&&>>> \u00e9 é"}}`, string(env),
		"nothing re-encodes the data: no \\u003c for <")
	require.True(t, json.Valid(env))

	retry := back.Retry(time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC))
	back, err = delivery.DecodeJob(retry.Msg("x").Header, data)
	require.NoError(t, err)
	require.Equal(t, 2, back.Attempt)
	require.Equal(t, job.ID+"/attempt/2", back.MsgID())
	require.False(t, back.NotBefore.IsZero())

	for h, v := range map[string]string{
		"Webhook-Attempt":    "9223372036854775807", // its retry would overflow
		"Webhook-Event-Time": "9999-12-31T23:59:59-23:59",
	} {
		bad := job.Msg("x")
		bad.Header.Set(h, v)
		_, err := delivery.DecodeJob(bad.Header, data)
		require.ErrorIs(t, err, delivery.ErrBadJob, "%s: %s", h, v)
	}
	for _, h := range []string{"Webhook-Delivery", "Webhook-Attempt", "Webhook-Event-Time"} {
		bad := job.Msg("x")
		bad.Header.Del(h)
		_, err := delivery.DecodeJob(bad.Header, data)
		require.ErrorIs(t, err, delivery.ErrBadJob, h)
	}
}

func TestJobIDsDifferForAnEventIDReusedLater(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	require.Equal(t, delivery.JobID("e", "s", 1, at), delivery.JobID("e", "s", 1, at), "the same stored event: the same id")
	require.NotEqual(t, delivery.JobID("e", "s", 1, at), delivery.JobID("e", "s", 2, at.Add(time.Minute)), "a new stream sequence is a new delivery")
	require.NotEqual(t, delivery.JobID("e", "s", 1, at), delivery.JobID("e", "t", 1, at))
	require.NotEqual(t, delivery.JobID("e", "s", 1, at), delivery.JobID("e", "s", 2, at), "stored in the same millisecond")
}

// Delivery ids are UUIDv7-shaped: they sort as their events were stored,
// whatever the events' and subscriptions' ids, so the history index grows
// at its end.
func TestJobIDsSortByStoredTime(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	prev := ""
	for i := range 1000 {
		id := delivery.JobID(fmt.Sprintf("evt-%d", 1000-i), fmt.Sprintf("sub-%d", i%7), uint64(i+1), at.Add(time.Duration(i)*time.Millisecond))
		u, err := uuid.Parse(id)
		require.NoError(t, err)
		require.Equal(t, uuid.Version(7), u.Version())
		require.Equal(t, uuid.RFC4122, u.Variant())
		require.Equal(t, at.Add(time.Duration(i)*time.Millisecond).UnixMilli(), time.Unix(u.Time().UnixTime()).UnixMilli(), "the stored time, to the millisecond")
		require.Greater(t, id, prev)
		prev = id
	}
}

func hmacHex(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
