package main

import (
	"crypto/hmac"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery/signature"
)

// holder is a receiver holding one secret. It checks a delivery the ways
// integration teams do: the seed's hex HMAC by hand (any comma-separated
// value, compared in constant time), delivery/signature's Verify, the
// Standard Webhooks reference library and our VerifyStandard.
type holder struct{ secret string }

// seedByHand is the README recipe without our code.
func (h holder) seedByHand(r received) bool {
	want := hmacHex(h.secret, r.Body)
	ok := false
	for _, v := range strings.Split(r.Header.Get("X-Webhook-Signature"), ",") {
		ok = hmac.Equal([]byte(strings.TrimSpace(v)), []byte(want)) || ok
	}
	return ok
}

// verifies returns, per scheme, whether the delivery verifies with h's
// secret; the two verifiers of each scheme must agree.
func (h holder) verifies(t *testing.T, r received) (seed, standard bool) {
	t.Helper()
	seed = h.seedByHand(r)
	require.Equal(t, seed, signature.Verify(h.secret, r.Body, r.Header.Get("X-Webhook-Signature")), "seed scheme: recipe and Verify agree")
	wh, err := standardwebhooks.NewWebhook(h.secret)
	require.NoError(t, err)
	standard = wh.Verify(r.Body, r.Header) == nil
	ours := signature.VerifyStandard(h.secret, r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"),
		r.Header.Get("webhook-signature"), r.Body, time.Now(), 5*time.Minute) == nil
	require.Equal(t, standard, ours, "standard scheme: reference library and VerifyStandard agree")
	return seed, standard
}

func TestRotationGraceEveryReceiverVerifiesBothSchemes(t *testing.T) {
	t.Parallel()
	d := start(t) // --secret-grace: the 24h default
	rcv, got := receiver(t)
	var created, rotated, view, expired client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["alert.triggered"]}`, &created))
	oldH := holder{created.Secret}
	require.True(t, created.PreviousSecretExpiresAt.IsZero())

	// Rotate with a grace period of one hour: the answer says when it ends.
	before := time.Now()
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+created.ID+"/rotate-secret", d.token, `{"grace":"1h"}`, &rotated))
	newH := holder{rotated.Secret}
	require.NotEqual(t, oldH.secret, newH.secret)
	require.WithinRange(t, rotated.PreviousSecretExpiresAt, before.Add(time.Hour-time.Second), time.Now().Add(time.Hour+time.Second))
	require.Equal(t, 200, d.call(t, "GET", "/v1/subscriptions/"+created.ID, d.token, "", &view))
	require.Empty(t, view.Secret)
	require.Equal(t, rotated.PreviousSecretExpiresAt, view.PreviousSecretExpiresAt, "get shows when the grace period ends")

	publish := func(n int) received {
		t.Helper()
		require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, fmt.Sprintf(`{"event":"alert.triggered","data":{"n":%d}}`, n), nil))
		return next(t, got)
	}
	// During the grace period both holders verify every delivery, in both schemes.
	for n := range 5 {
		r := publish(n)
		for name, h := range map[string]holder{"old": oldH, "new": newH} {
			seed, std := h.verifies(t, r)
			require.True(t, seed, "delivery %d: %s secret, X-Webhook-Signature", n, name)
			require.True(t, std, "delivery %d: %s secret, webhook-signature", n, name)
		}
		require.Equal(t, []string{hmacHex(newH.secret, r.Body), hmacHex(oldH.secret, r.Body)},
			strings.Split(r.Header.Get("X-Webhook-Signature"), ","), "newest first")
		require.Len(t, strings.Fields(r.Header.Get("webhook-signature")), 2)
	}

	// Expire the previous secret early: only the new holder verifies.
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+created.ID+"/expire-secret", d.token, "", &expired))
	require.Empty(t, expired.Secret, "expire-secret shows no secret")
	require.True(t, expired.PreviousSecretExpiresAt.IsZero())
	for n := range 3 {
		r := publish(10 + n)
		seed, std := oldH.verifies(t, r)
		require.False(t, seed, "old secret, X-Webhook-Signature, after expiry")
		require.False(t, std, "old secret, webhook-signature, after expiry")
		seed, std = newH.verifies(t, r)
		require.True(t, seed)
		require.True(t, std)
		require.Equal(t, hmacHex(newH.secret, r.Body), r.Header.Get("X-Webhook-Signature"), "exactly one value outside a grace period")
		require.Len(t, strings.Fields(r.Header.Get("webhook-signature")), 1)
	}

	// --grace 0 ends the grace period at once.
	var third client.Subscription
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+created.ID+"/rotate-secret", d.token, `{"grace":"0s"}`, &third))
	require.True(t, third.PreviousSecretExpiresAt.IsZero())
	r := publish(20)
	seed, std := newH.verifies(t, r)
	require.False(t, seed || std, "the secret rotated out with grace 0 no longer signs")
	seed, std = holder{third.Secret}.verifies(t, r)
	require.True(t, seed && std)

	logs := d.logs.String()
	for _, s := range []string{oldH.secret, newH.secret, third.Secret} {
		require.NotContains(t, logs, s)
		require.NotContains(t, logs, strings.TrimPrefix(s, "whsec_"))
	}
}

func TestRotationGraceEndsByItself(t *testing.T) {
	t.Parallel()
	d := start(t)
	rcv, got := receiver(t)
	var created, rotated client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["alert.triggered"]}`, &created))
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+created.ID+"/rotate-secret", d.token, `{"grace":"1s"}`, &rotated))
	ends := rotated.PreviousSecretExpiresAt
	require.False(t, ends.IsZero())
	// Deliveries verify with the old secret until the time the answer gave,
	// and not after it.
	for n := 0; ; n++ {
		require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, fmt.Sprintf(`{"event":"alert.triggered","data":{"n":%d}}`, n), nil))
		r := next(t, got)
		seed, std := holder{created.Secret}.verifies(t, r)
		require.Equal(t, seed, std, "both schemes agree")
		if !seed {
			require.False(t, time.Now().Before(ends), "the old secret stopped signing before the grace period ended")
			break
		}
		require.True(t, time.Now().Before(ends.Add(10*time.Second)), "old secret still signing 10s after the grace period ended (%d deliveries)", n+1)
	}
}

func TestRotationGraceValidation(t *testing.T) {
	t.Parallel()
	d := start(t)
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"https://h.example/x","events":["task.completed"]}`, &sub))
	for body, mentions := range map[string]string{
		`{"grace":"-1s"}`:   "grace",
		`{"grace":"721h"}`:  "720h",
		`{"grace":"soon"}`:  `"soon"`,
		`{"grace":5}`:       "grace",
		`{"colour":"red"}`:  "colour",
		`{"grace":"1h"} {}`: "trailing",
	} {
		var e apiErr
		require.Equal(t, http.StatusBadRequest, d.call(t, "POST", "/v1/subscriptions/"+sub.ID+"/rotate-secret", d.token, body, &e), body)
		require.Contains(t, e.Error.Message, mentions, body)
		require.NotContains(t, e.Error.Message, "\n")
	}
	var e apiErr
	require.Equal(t, http.StatusNotFound, d.call(t, "POST", "/v1/subscriptions/6f1c0000-0000-4000-8000-000000000001/expire-secret", d.token, "", &e))
	// Nothing was rotated by the refused requests.
	var rotated client.Subscription
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+sub.ID+"/rotate-secret", d.token, "", &rotated))
	require.WithinDuration(t, time.Now().Add(24*time.Hour), rotated.PreviousSecretExpiresAt, time.Minute, "no body: --secret-grace")
	// A shorter grace on the next rotation also cuts the earlier secret's.
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+sub.ID+"/rotate-secret", d.token, `{"grace":"10m"}`, &rotated))
	require.WithinDuration(t, time.Now().Add(10*time.Minute), rotated.PreviousSecretExpiresAt, time.Minute)
}
