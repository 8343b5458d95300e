package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/internal/daemontest"
)

// got is one request a test receiver got.
type got = daemontest.Request

// signedWith reports whether g verifies with secret in the seed scheme (by
// the hex HMAC recipe) and in the Standard Webhooks one (reference library).
func signedWith(t *testing.T, secret string, g got) (seed, standard bool) {
	t.Helper()
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(g.Body)
	want := hex.EncodeToString(m.Sum(nil))
	for _, v := range strings.Split(g.Header.Get("X-Webhook-Signature"), ",") {
		seed = seed || hmac.Equal([]byte(v), []byte(want))
	}
	require.Equal(t, seed, signature.Verify(secret, g.Body, g.Header.Get("X-Webhook-Signature")))
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	return seed, wh.Verify(g.Body, g.Header) == nil
}

// oneLineError checks a failed command: exit 1, one line on stderr.
func oneLineError(t *testing.T, d *daemon, mentions string, args ...string) {
	t.Helper()
	_, errOut, code := d.ctl(args...)
	require.Equal(t, 1, code, "%v", args)
	require.True(t, strings.HasPrefix(errOut, "webhookctl: "), "%v: %q", args, errOut)
	require.Equal(t, 1, strings.Count(errOut, "\n"), "%v: one line: %q", args, errOut)
	require.Contains(t, errOut, mentions, "%v", args)
}

func TestCLIRotateGraceAndExpireSecret(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	rcv, ch, _ := daemontest.Receiver(t, http.StatusOK, "")
	var created, rotated client.Subscription
	d.ctlJSON(t, &created, "subscriptions", "create", "--url", rcv.URL, "--events", "task.completed")

	// The table says when the grace period ends; JSON gives the time.
	out, errOut, code := d.ctl("subscriptions", "rotate-secret", created.ID, "--grace", "2h")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^SECRET\s+whsec_\S+\s+\(shown only now`, out)
	require.Regexp(t, `(?m)^GRACE ENDS\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ .*the previous secret signs too until then`, out)
	d.ctlJSON(t, &rotated, "subscriptions", "get", created.ID)
	require.WithinDuration(t, time.Now().Add(2*time.Hour), rotated.PreviousSecretExpiresAt, time.Minute)
	newSecret := strings.Fields(strings.SplitN(strings.SplitN(out, "SECRET", 2)[1], "\n", 2)[0])[0]
	require.True(t, strings.HasPrefix(newSecret, "whsec_"))

	publish := func(id string) got {
		t.Helper()
		_, errOut, code := d.ctl("events", "publish", "task.completed", "--data", `{"n":1}`, "--id", id)
		require.Equal(t, 0, code, errOut)
		return daemontest.Next(t, ch)
	}
	g := publish("during-grace")
	for _, secret := range []string{created.Secret, newSecret} {
		seed, std := signedWith(t, secret, g)
		require.True(t, seed && std, "old and new secrets verify in both schemes during the grace period")
	}

	// expire-secret ends it: the old secret no longer verifies.
	out, errOut, code = d.ctl("subscriptions", "expire-secret", created.ID)
	require.Equal(t, 0, code, errOut)
	require.NotContains(t, out, "GRACE ENDS")
	require.NotContains(t, out, "whsec_")
	g = publish("after-expiry")
	seed, std := signedWith(t, created.Secret, g)
	require.False(t, seed || std)
	seed, std = signedWith(t, newSecret, g)
	require.True(t, seed && std)

	// --grace 0 says so at once.
	out, errOut, code = d.ctl("subscriptions", "rotate-secret", created.ID, "--grace", "0")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^GRACE ENDS\s+now\s+\(only the new secret signs\)`, out)

	// Without --grace: the server's --secret-grace (24h by default).
	var dflt client.Subscription
	d.ctlJSON(t, &dflt, "subscriptions", "rotate-secret", created.ID)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), dflt.PreviousSecretExpiresAt, time.Minute)

	oneLineError(t, d, "--grace", "subscriptions", "rotate-secret", created.ID, "--grace", "soon")
	oneLineError(t, d, "720h", "subscriptions", "rotate-secret", created.ID, "--grace", "1000h")
	oneLineError(t, d, "want 0 or more", "subscriptions", "rotate-secret", created.ID, "--grace", "-1s")
	require.NotContains(t, d.log.String(), newSecret)
}

func TestCLIPingPrintsTheOutcome(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	rcv, ch, n := daemontest.Receiver(t, http.StatusOK, "pong\nfrom the receiver")
	var sub client.Subscription
	d.ctlJSON(t, &sub, "subscriptions", "create", "--url", rcv.URL, "--events", "task.completed")

	out, errOut, code := d.ctl("subscriptions", "ping", sub.ID)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^OUTCOME\s+succeeded$`, out)
	require.Regexp(t, `(?m)^STATUS\s+200$`, out)
	require.Regexp(t, `(?m)^DURATION\s+\d+ms$`, out, "whole milliseconds, as in the attempts table")
	require.Regexp(t, `(?m)^RESPONSE\s+pong from the receiver$`, out)
	g := daemontest.Next(t, ch)
	require.Equal(t, "webhook.ping", g.Header.Get("X-Webhook-Event"))
	seed, std := signedWith(t, sub.Secret, g)
	require.True(t, seed && std, "signed like any delivery")
	require.Equal(t, int64(1), n.Load(), "exactly one request")

	// A failing endpoint: the outcome is printed, and the exit status is 1.
	bad, _, _ := daemontest.Receiver(t, http.StatusInternalServerError, "boom")
	var failing client.Subscription
	d.ctlJSON(t, &failing, "subscriptions", "create", "--url", bad.URL, "--events", "task.completed")
	out, errOut, code = d.ctl("subscriptions", "ping", failing.ID)
	require.Equal(t, 1, code)
	require.Regexp(t, `(?m)^OUTCOME\s+failed \(http_500\)$`, out)
	require.Regexp(t, `(?m)^STATUS\s+500$`, out)
	require.Regexp(t, `(?m)^RESPONSE\s+boom$`, out)
	require.Equal(t, "webhookctl: ping of "+failing.ID+" failed: http_500\n", errOut)

	var res client.PingResult
	out, _, code = d.ctl("-o", "json", "subscriptions", "ping", sub.ID)
	require.Equal(t, 0, code)
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, 200, res.StatusCode)
	var dl client.Delivery
	d.ctlJSON(t, &dl, "deliveries", "get", res.DeliveryID)
	require.Equal(t, "webhook.ping", dl.Event)
	require.Contains(t, dl.Reason, "test")
	oneLineError(t, d, "not found", "subscriptions", "ping", "6f1c0000-0000-4000-8000-000000000001")
}

func TestCLIHeadersAndRetryPolicy(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	rcv, ch, _ := daemontest.Receiver(t, http.StatusOK, "")
	out, errOut, code := d.ctl("subscriptions", "create", "--url", rcv.URL, "--events", "task.completed",
		"--header", "X-Api-Key: abc-secret-1", "--header", "x-tenant:lab", "--retry-policy", "exp:1s:1m:5:0.1")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^HEADERS\s+X-Api-Key: \[redacted\], X-Tenant: \[redacted\]$`, out)
	require.Regexp(t, `(?m)^RETRY POLICY\s+exp:1s:1m0s:5:0.1$`, out)
	require.NotContains(t, out, "abc-secret-1")
	id := strings.Fields(strings.SplitN(out, "\n", 2)[0])[1]

	_, errOut, code = d.ctl("events", "publish", "task.completed", "--data", `{}`)
	require.Equal(t, 0, code, errOut)
	g := daemontest.Next(t, ch)
	require.Equal(t, "abc-secret-1", g.Header.Get("X-Api-Key"))
	require.Equal(t, "lab", g.Header.Get("X-Tenant"))

	out, errOut, code = d.ctl("subscriptions", "update", id, "--remove-header", "x-tenant", "--header", "X-Api-Key: abc-secret-2", "--retry-policy", "default")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^HEADERS\s+X-Api-Key: \[redacted\]$`, out)
	require.Regexp(t, `(?m)^RETRY POLICY\s+default$`, out)
	var sub client.Subscription
	d.ctlJSON(t, &sub, "subscriptions", "update", id, "--retry-policy", "10s,1m")
	require.Equal(t, "10s,1m0s", sub.RetryPolicy)
	require.Equal(t, map[string]string{"X-Api-Key": client.RedactedValue}, sub.Headers)

	oneLineError(t, d, "hop-by-hop", "subscriptions", "update", id, "--header", "Connection: close")
	oneLineError(t, d, "signature", "subscriptions", "update", id, "--header", "X-Webhook-Signature: 00")
	oneLineError(t, d, "want 'Name: value'", "subscriptions", "update", id, "--header", "X-Api-Key")
	oneLineError(t, d, "both name", "subscriptions", "update", id, "--header", "X-A: 1", "--remove-header", "X-A")
	oneLineError(t, d, "retry_policy", "subscriptions", "update", id, "--retry-policy", "exp:5s")
	oneLineError(t, d, "retry_policy", "subscriptions", "create", "--url", rcv.URL, "--events", "task.completed", "--retry-policy", "never")

	list, _, _ := d.ctl("-o", "json", "subscriptions", "list")
	for _, s := range []string{list, d.log.String()} {
		require.NotContains(t, s, "abc-secret-1")
		require.NotContains(t, s, "abc-secret-2")
	}
}
