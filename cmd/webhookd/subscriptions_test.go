package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/config"
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/subscriptions"
	"github.com/robotlab/webhookd/subscriptions/substest"
)

// noRedirects is a client that reports a redirect instead of following it.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestAPIBadIDsAnswer404(t *testing.T) {
	t.Parallel()
	d := start(t)
	bad := map[string]string{ // name → path segment, escaped as a client would
		"star":          "*",
		"gt":            "%3E",
		"wildcard key":  "a.*",
		"space":         "a%20b",
		"slash":         "a%2Fb",
		"dot":           ".",
		"dot dot":       "..",
		"escaped dot":   "%2E",
		"dotted":        "a.b",
		"empty":         "",
		"1000 chars":    strings.Repeat("a", 1000),
		"not a uuid":    "nope",
		"uuid in urn":   "urn:uuid:6f1c2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
		"unknown uuid":  "6f1c2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
		"control chars": "%00%0A",
	}
	routes := []struct{ method, prefix, suffix, body string }{
		{"GET", "/v1/subscriptions/", "", ""},
		{"PATCH", "/v1/subscriptions/", "", `{"description":"x"}`},
		{"DELETE", "/v1/subscriptions/", "", ""},
		{"POST", "/v1/subscriptions/", "/pause", ""},
		{"POST", "/v1/subscriptions/", "/resume", ""},
		{"POST", "/v1/subscriptions/", "/rotate-secret", ""},
		{"GET", "/v1/deliveries/", "", ""},
		{"POST", "/v1/deliveries/", "/redeliver", ""},
	}
	for _, rt := range routes {
		for name, seg := range bad {
			path := rt.prefix + seg + rt.suffix
			var body io.Reader
			if rt.body != "" {
				body = strings.NewReader(rt.body)
			}
			req, err := http.NewRequest(rt.method, d.api+path, body)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+d.token)
			resp, err := noRedirects.Do(req)
			require.NoError(t, err)
			raw, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			what := rt.method + " " + rt.prefix + "{" + name + "}" + rt.suffix
			require.Equal(t, http.StatusNotFound, resp.StatusCode, "%s: %s", what, raw)
			var e apiErr
			require.NoError(t, json.Unmarshal(raw, &e), "%s: JSON error shape: %s", what, raw)
			require.Equal(t, client.CodeNotFound, e.Error.Code, what)
			require.NotEmpty(t, e.Error.Message, what)
			require.Less(t, len(e.Error.Message), 200, "%s: the id is shortened", what)
		}
	}
	require.NotContains(t, d.logs.String(), `"level":"error"`, "no request logged an error")
}

func bucketOf(t *testing.T, ns *jstest.Server) natsjs.KeyValue {
	t.Helper()
	kv, err := ns.JS.KeyValue(context.Background(), jetstream.BucketSubscriptions)
	require.NoError(t, err)
	return kv
}

func TestAPIEndpointHealthFields(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	d := start(t, "--nats-url", ns.ClientURL())
	other := substest.Replica(t, bucketOf(t, ns))
	ctx := context.Background()

	// max_in_flight: set on create and update, validated, shown.
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token,
		`{"url":"https://h.example/x","events":["task.*"],"max_in_flight":5}`, &sub))
	require.Equal(t, 5, sub.MaxInFlight)
	require.Equal(t, 200, d.call(t, "PATCH", "/v1/subscriptions/"+sub.ID, d.token, `{"max_in_flight":0}`, &sub))
	require.Equal(t, 0, sub.MaxInFlight, "back to the default")
	for _, body := range []string{
		`{"url":"https://h.example/x","events":["task.*"],"max_in_flight":1001}`,
		`{"url":"https://h.example/x","events":["task.*"],"max_in_flight":-1}`,
	} {
		var e apiErr
		require.Equal(t, 400, d.call(t, "POST", "/v1/subscriptions", d.token, body, &e), body)
		require.Contains(t, e.Error.Message, "max_in_flight")
	}
	var e apiErr
	require.Equal(t, 400, d.call(t, "PATCH", "/v1/subscriptions/"+sub.ID, d.token, `{"max_in_flight":2000}`, &e))
	require.Contains(t, e.Error.Message, "max_in_flight")
	require.Equal(t, 200, d.call(t, "PATCH", "/v1/subscriptions/"+sub.ID, d.token, `{"max_in_flight":7}`, &sub))

	// fresh decodes into a new value: omitted fields must read as empty.
	fresh := func(method, path, body string) client.Subscription {
		var v client.Subscription
		require.Equal(t, 200, d.call(t, method, path, d.token, body, &v), "%s %s", method, path)
		return v
	}
	raw := func() map[string]any {
		var m map[string]any
		require.Equal(t, 200, d.call(t, "GET", "/v1/subscriptions/"+sub.ID, d.token, "", &m))
		return m
	}
	healthy := raw()
	require.EqualValues(t, 7, healthy["max_in_flight"])
	for _, k := range []string{"disabled_reason", "disabled_at", "failing_since", "secret"} {
		require.NotContains(t, healthy, k, "omitted while empty")
	}

	// Another replica's dispatcher records a failure run and disables it.
	since := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	require.NoError(t, other.SetFailingSince(ctx, sub.ID, since))
	at := time.Now().UTC().Truncate(time.Second)
	_, changed, err := other.Disable(ctx, sub.ID, "endpoint_gone", at)
	require.NoError(t, err)
	require.True(t, changed)
	var got client.Subscription
	waitFor(t, func() bool {
		got = fresh("GET", "/v1/subscriptions/"+sub.ID, "")
		return got.DisabledReason != ""
	})
	require.False(t, got.Active)
	require.Equal(t, "disabled", got.State())
	require.Equal(t, "endpoint_gone", got.DisabledReason)
	require.True(t, at.Equal(got.DisabledAt))
	require.True(t, since.Equal(got.FailingSince))
	require.Equal(t, 7, got.MaxInFlight)
	var list client.List[client.Subscription]
	require.Equal(t, 200, d.call(t, "GET", "/v1/subscriptions", d.token, "", &list))
	require.Equal(t, "endpoint_gone", list.Items[0].DisabledReason)

	// failing_since is read-only through the API.
	require.Equal(t, 400, d.call(t, "PATCH", "/v1/subscriptions/"+sub.ID, d.token, `{"failing_since":"2024-01-01T00:00:00Z"}`, &e))

	// Pausing a disabled subscription keeps the reason; resume clears it all.
	got = fresh("POST", "/v1/subscriptions/"+sub.ID+"/pause", "")
	require.Equal(t, "disabled", got.State())
	require.Equal(t, "endpoint_gone", got.DisabledReason)
	got = fresh("POST", "/v1/subscriptions/"+sub.ID+"/resume", "")
	require.True(t, got.Active)
	require.Equal(t, "active", got.State())
	require.Empty(t, got.DisabledReason)
	require.True(t, got.FailingSince.IsZero())
	resumed := raw()
	for _, k := range []string{"disabled_reason", "disabled_at", "failing_since"} {
		require.NotContains(t, resumed, k, "cleared by resume")
	}

	// PATCH active=true re-enables too; active=false only pauses.
	_, changed, err = other.Disable(ctx, sub.ID, "failing", time.Time{})
	require.NoError(t, err)
	require.True(t, changed)
	waitFor(t, func() bool { return fresh("GET", "/v1/subscriptions/"+sub.ID, "").DisabledReason == "failing" })
	got = fresh("PATCH", "/v1/subscriptions/"+sub.ID, `{"active":true}`)
	require.Equal(t, "active", got.State())
	require.Empty(t, got.DisabledReason)
	got = fresh("PATCH", "/v1/subscriptions/"+sub.ID, `{"active":false}`)
	require.Equal(t, "paused", got.State())
	_, changed, err = other.Disable(ctx, sub.ID, "failing", time.Time{})
	require.NoError(t, err)
	require.False(t, changed, "a paused subscription is not disabled")
}

func writeKey(t *testing.T) (path, b64 string) {
	t.Helper()
	raw := make([]byte, 32)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	b64 = base64.StdEncoding.EncodeToString(raw)
	path = filepath.Join(t.TempDir(), "secret.key")
	require.NoError(t, os.WriteFile(path, []byte(b64+"\n"), 0o600))
	return path, b64
}

// runFails runs webhookd, which must stop on its own with an error.
func runFails(t *testing.T, args ...string) (logs string, err error) {
	t.Helper()
	out := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = run(ctx, args, noEnv, out)
	require.Error(t, err, "webhookd must refuse to start")
	require.NoError(t, ctx.Err(), "it stopped on its own")
	return out.String(), err
}

func TestSecretKeyFileEncryptsSecretsAtRest(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	keyFile, keyB64 := writeKey(t)
	d := start(t, "--nats-url", ns.ClientURL(), "--secret-key-file", keyFile)
	rcv, got := receiver(t)
	var sub, rotated client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.completed"]}`, &sub))
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+sub.ID+"/rotate-secret", d.token, "", &rotated))

	// The bucket holds no plaintext secret.
	e, err := bucketOf(t, ns).Get(context.Background(), sub.ID)
	require.NoError(t, err)
	stored := string(e.Value())
	for _, s := range []string{sub.Secret, rotated.Secret} {
		require.NotContains(t, stored, strings.TrimPrefix(s, "whsec_"))
	}
	require.Contains(t, stored, `"enc:v1:`)

	// Deliveries are still signed with the real secrets.
	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"task.completed","data":{}}`, nil))
	r := next(t, got)
	require.True(t, signature.Verify(rotated.Secret, r.Body, r.Header.Get("X-Webhook-Signature")))
	require.True(t, verifies(t, sub.Secret, r), "the previous secret, decrypted, signs too")
	require.NoError(t, d.stop())
	logs := d.logs.String()
	require.NotContains(t, logs, keyB64)
	require.Contains(t, logs, "encrypted at rest")

	// Nor does the bbolt mirror.
	db, err := bolt.Open(filepath.Join(d.dataDir, "webhooks.db"), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	require.NoError(t, err)
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("subs")).ForEach(func(_, v []byte) error {
			require.NotContains(t, string(v), "whsec_")
			return nil
		})
	}))
	require.NoError(t, db.Close())

	// Restarted without the key, or with another, it refuses to start and
	// says why, without showing any key.
	base := []string{"--data-dir", d.dataDir, "--nats-url", ns.ClientURL(), "--http-addr", freeAddr(t)}
	logs, err = runFails(t, base...)
	require.ErrorIs(t, err, subscriptions.ErrSecretKey)
	require.ErrorContains(t, err, "no key is configured (--secret-key-file or WEBHOOKD_SECRET_KEY)")
	otherFile, otherB64 := writeKey(t)
	logs2, err := runFails(t, append(base, "--secret-key-file", otherFile)...)
	require.ErrorIs(t, err, subscriptions.ErrSecretKey)
	require.ErrorContains(t, err, "but the configured key is")
	for _, out := range []string{err.Error(), logs, logs2} {
		require.NotContains(t, out, keyB64)
		require.NotContains(t, out, otherB64)
	}
}

func TestSecretKeySources(t *testing.T) {
	t.Parallel()
	file, b64 := writeKey(t)
	fromFile, err := secretKey(config.Config{SecretKeyFile: file})
	require.NoError(t, err)
	fromEnv, err := secretKey(config.Config{SecretKey: b64})
	require.NoError(t, err)
	require.Equal(t, fromFile.ID(), fromEnv.ID())
	none, err := secretKey(config.Config{})
	require.NoError(t, err)
	require.Nil(t, none)

	empty := filepath.Join(t.TempDir(), "empty.key")
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	short := filepath.Join(t.TempDir(), "short.key")
	require.NoError(t, os.WriteFile(short, []byte("c2hvcnQ="), 0o600))
	for _, tt := range []struct {
		cfg  config.Config
		want string
	}{
		{config.Config{SecretKeyFile: filepath.Join(t.TempDir(), "missing")}, "secret-key-file: open"},
		{config.Config{SecretKeyFile: empty}, "secret-key-file " + empty + ": subscriptions: secret key: empty"},
		{config.Config{SecretKeyFile: short}, "5 bytes: want 32"},
		{config.Config{SecretKey: "not base64!"}, "WEBHOOKD_SECRET_KEY: subscriptions: secret key: not base64"},
	} {
		_, err := secretKey(tt.cfg)
		require.ErrorContains(t, err, tt.want)
		require.NotContains(t, err.Error(), "c2hvcnQ")
		require.NotContains(t, err.Error(), "not base64!")
	}

	// Through run: a bad key stops webhookd before it serves.
	_, err = runFails(t, "--data-dir", t.TempDir(), "--nats-listen", freeAddr(t), "--http-addr", freeAddr(t), "--secret-key-file", short)
	require.ErrorContains(t, err, "want 32")
}
