package receiver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/internal/daemontest"
	"github.com/robotlab/webhookd/receiver"
)

const (
	oldSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="
	newSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

var body = []byte(`{"id":"evt-1","event":"task.completed","timestamp":"2026-11-29T10:30:00Z","data":{"task_id":"T123"}}`)

// signed is a delivery as webhookd sends it, signed with secrets at sent.
func signed(t *testing.T, body []byte, sent time.Time, secrets ...string) http.Header {
	t.Helper()
	std, err := signature.SignStandard(secrets, "dlv-1", sent, body)
	require.NoError(t, err)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-Webhook-Signature", signature.SignAll(secrets, body))
	h.Set("X-Webhook-Event", "task.completed")
	h.Set("X-Webhook-ID", "sub-1")
	h.Set("X-Webhook-Delivery", "dlv-1")
	h.Set("X-Webhook-Attempt", "2")
	h.Set("webhook-id", "dlv-1")
	h.Set("webhook-timestamp", strconv.FormatInt(sent.Unix(), 10))
	h.Set("webhook-signature", std)
	return h
}

// serve sends one request through the middleware and returns the answer
// and the event next got (nil when next was not called).
func serve(t *testing.T, v *receiver.Verifier, h http.Header, body []byte) (*httptest.ResponseRecorder, *receiver.Event) {
	t.Helper()
	var got *receiver.Event
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, ok := receiver.EventFrom(r.Context())
		require.True(t, ok)
		raw, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		require.Equal(t, string(body), string(raw), "next reads the raw body")
		got = &ev
		w.WriteHeader(http.StatusNoContent)
	})
	r := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
	r.Header = h
	w := httptest.NewRecorder()
	v.Middleware(next).ServeHTTP(w, r)
	return w, got
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	fixed := func() time.Time { return now }
	without := func(h http.Header, names ...string) http.Header {
		for _, n := range names {
			h.Del(n)
		}
		return h
	}
	tampered := bytes.Replace(body, []byte("T123"), []byte("T999"), 1)

	for _, tc := range []struct {
		name    string
		scheme  receiver.Scheme
		secrets []string
		h       http.Header
		body    []byte
		status  int
		want    error  // nil: accepted
		message string // in the 401 answer
	}{
		{"both schemes", receiver.SchemeEither, []string{oldSecret}, signed(t, body, now, oldSecret), body, 204, nil, ""},
		{"X-Webhook-Signature only", receiver.SchemeEither, []string{oldSecret},
			without(signed(t, body, now, oldSecret), "webhook-signature"), body, 204, nil, ""},
		{"X-Webhook scheme ignores a stale timestamp", receiver.SchemeXWebhook, []string{oldSecret},
			signed(t, body, now.Add(-time.Hour), oldSecret), body, 204, nil, ""},
		{"rotation: receiver holds old and new, sender only old", receiver.SchemeEither, []string{newSecret, oldSecret},
			signed(t, body, now, oldSecret), body, 204, nil, ""},
		{"rotation: sender signs with both, receiver holds old", receiver.SchemeStandard, []string{oldSecret},
			signed(t, body, now, newSecret, oldSecret), body, 204, nil, ""},
		{"rotation: sender signs with both, receiver holds new (X-Webhook)", receiver.SchemeXWebhook, []string{newSecret},
			signed(t, body, now, newSecret, oldSecret), body, 204, nil, ""},
		{"4m59s old", receiver.SchemeStandard, []string{oldSecret}, signed(t, body, now.Add(-299*time.Second), oldSecret), body, 204, nil, ""},

		{"tampered body", receiver.SchemeEither, []string{oldSecret}, signed(t, body, now, oldSecret), tampered, 401,
			receiver.ErrSignature, "receiver: signature does not match: webhook-signature"},
		{"tampered body (X-Webhook)", receiver.SchemeXWebhook, []string{oldSecret}, signed(t, body, now, oldSecret), tampered, 401,
			receiver.ErrSignature, "receiver: signature does not match: X-Webhook-Signature"},
		{"wrong secret", receiver.SchemeEither, []string{newSecret}, signed(t, body, now, oldSecret), body, 401,
			receiver.ErrSignature, "signature does not match"},
		{"stale timestamp", receiver.SchemeEither, []string{oldSecret}, signed(t, body, now.Add(-6*time.Minute), oldSecret), body, 401,
			receiver.ErrTimestamp, "receiver: timestamp outside the tolerance: signed 6m0s from now, tolerance 5m0s"},
		{"timestamp in the future", receiver.SchemeEither, []string{oldSecret}, signed(t, body, now.Add(6*time.Minute), oldSecret), body, 401,
			receiver.ErrTimestamp, "timestamp outside the tolerance"},
		{"timestamp not a number", receiver.SchemeEither, []string{oldSecret},
			func() http.Header {
				h := signed(t, body, now, oldSecret)
				h.Set("webhook-timestamp", "yesterday")
				return h
			}(), body, 401,
			receiver.ErrTimestamp, `webhook-timestamp "yesterday" is not unix seconds`},
		{"missing webhook-id", receiver.SchemeStandard, []string{oldSecret}, without(signed(t, body, now, oldSecret), "webhook-id"), body, 401,
			receiver.ErrMissingHeader, "receiver: missing header: webhook-id"},
		{"missing webhook-timestamp", receiver.SchemeEither, []string{oldSecret}, without(signed(t, body, now, oldSecret), "webhook-timestamp"), body, 401,
			receiver.ErrMissingHeader, "receiver: missing header: webhook-timestamp"},
		{"missing webhook-signature (Standard)", receiver.SchemeStandard, []string{oldSecret},
			without(signed(t, body, now, oldSecret), "webhook-signature"), body, 401,
			receiver.ErrMissingHeader, "receiver: missing header: webhook-signature"},
		{"missing X-Webhook-Signature", receiver.SchemeXWebhook, []string{oldSecret},
			without(signed(t, body, now, oldSecret), "X-Webhook-Signature"), body, 401,
			receiver.ErrMissingHeader, "receiver: missing header: X-Webhook-Signature"},
		{"no signature at all", receiver.SchemeEither, []string{oldSecret},
			without(signed(t, body, now, oldSecret), "X-Webhook-Signature", "webhook-signature"), body, 401,
			receiver.ErrMissingHeader, "receiver: missing header: webhook-signature (or X-Webhook-Signature)"},
		{"signed, but not a payload", receiver.SchemeEither, []string{oldSecret}, signed(t, []byte(`[1]`), now, oldSecret), []byte(`[1]`), 400,
			receiver.ErrBody, "not a webhookd payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var rejected error
			v, err := receiver.New(receiver.Config{Secrets: tc.secrets, Scheme: tc.scheme, Now: fixed,
				OnReject: func(_ *http.Request, err error) { rejected = err }})
			require.NoError(t, err)
			w, got := serve(t, v, tc.h, tc.body)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			if tc.want == nil {
				require.NotNil(t, got)
				require.Equal(t, receiver.Event{ID: "evt-1", Type: "task.completed", Timestamp: time.Date(2026, 11, 29, 10, 30, 0, 0, time.UTC),
					Data: json.RawMessage(`{"task_id":"T123"}`), DeliveryID: "dlv-1", SubscriptionID: "sub-1", Attempt: 2}, *got)
				require.NoError(t, rejected)
				return
			}
			require.Nil(t, got, "next must not run")
			require.ErrorIs(t, rejected, tc.want)
			for _, other := range []error{receiver.ErrSignature, receiver.ErrTimestamp, receiver.ErrMissingHeader, receiver.ErrBody} {
				if other != tc.want {
					require.False(t, errors.Is(rejected, other), "%v is also %v", rejected, other)
				}
			}
			require.Equal(t, rejected.Error()+"\n", w.Body.String())
			require.Contains(t, w.Body.String(), tc.message)
			for _, s := range tc.secrets {
				require.NotContains(t, w.Body.String(), strings.TrimPrefix(s, "whsec_"))
			}
		})
	}
}

func TestMiddlewareBodyLimit(t *testing.T) {
	t.Parallel()
	v, err := receiver.New(receiver.Config{Secrets: []string{oldSecret}, MaxBodyBytes: 64})
	require.NoError(t, err)
	w, got := serve(t, v, signed(t, body, time.Now(), oldSecret), body)
	require.Equal(t, http.StatusRequestEntityTooLarge, w.Code)
	require.Nil(t, got)
	require.Contains(t, w.Body.String(), "receiver: bad body")
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []receiver.Config{
		{},
		{Secrets: []string{"not-a-secret"}},
		{Secrets: []string{oldSecret, "whsec_short"}},
		{Secrets: []string{oldSecret}, Scheme: 7},
	} {
		_, err := receiver.New(cfg)
		require.Error(t, err)
		require.NotContains(t, err.Error(), "\n")
	}
}

// The standard-webhooks library signs; the middleware verifies.
func TestAcceptsWhatTheStandardWebhooksLibrarySigns(t *testing.T) {
	t.Parallel()
	wh, err := standardwebhooks.NewWebhook(oldSecret)
	require.NoError(t, err)
	sent := time.Now()
	sig, err := wh.Sign("msg_2b9aXYZ", sent, body)
	require.NoError(t, err)
	h := http.Header{}
	h.Set("webhook-id", "msg_2b9aXYZ")
	h.Set("webhook-timestamp", strconv.FormatInt(sent.Unix(), 10))
	h.Set("webhook-signature", sig)
	v, err := receiver.New(receiver.Config{Secrets: []string{newSecret, oldSecret}, Scheme: receiver.SchemeStandard})
	require.NoError(t, err)
	w, got := serve(t, v, h, body)
	require.Equal(t, http.StatusNoContent, w.Code, w.Body.String())
	require.Equal(t, "msg_2b9aXYZ", got.DeliveryID)

	// And it refuses what the library signed with another secret.
	other, err := standardwebhooks.NewWebhook(newSecret)
	require.NoError(t, err)
	sig, err = other.Sign("msg_2b9aXYZ", sent, body)
	require.NoError(t, err)
	h.Set("webhook-signature", sig)
	v, err = receiver.New(receiver.Config{Secrets: []string{oldSecret}})
	require.NoError(t, err)
	w, _ = serve(t, v, h, body)
	require.Equal(t, http.StatusUnauthorized, w.Code)
}

// Real deliveries from the real dispatcher: the middleware accepts them, the
// standard-webhooks library verifies the same requests, and a receiver with
// another secret answers 401, which webhookd records.
func TestRealDeliveries(t *testing.T) {
	t.Parallel()
	d := daemontest.Start(t, webhookdBin, "--retry-backoff", "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := d.Client(t)

	type delivered struct {
		ev     receiver.Event
		libErr error
	}
	got := make(chan delivered, 16)
	mux := http.NewServeMux() // handlers are registered once the secrets are known
	rcv := httptest.NewServer(mux)
	t.Cleanup(rcv.Close)
	sub, err := admin.CreateSubscription(ctx, client.SubscriptionInput{URL: rcv.URL + "/good", Events: []string{"task.*"}})
	require.NoError(t, err)
	otherSub, err := admin.CreateSubscription(ctx, client.SubscriptionInput{URL: rcv.URL + "/wrong", Events: []string{"task.*"}})
	require.NoError(t, err)

	lib, err := standardwebhooks.NewWebhook(sub.Secret)
	require.NoError(t, err)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, _ := receiver.EventFrom(r.Context())
		raw, _ := io.ReadAll(r.Body)
		got <- delivered{ev, lib.Verify(raw, r.Header)}
	})
	good, err := receiver.New(receiver.Config{Secrets: []string{sub.Secret}, Scheme: receiver.SchemeStandard})
	require.NoError(t, err)
	goodX, err := receiver.New(receiver.Config{Secrets: []string{sub.Secret}, Scheme: receiver.SchemeXWebhook})
	require.NoError(t, err)
	rejected := make(chan error, 16)
	wrong, err := receiver.New(receiver.Config{Secrets: []string{sub.Secret}, // not otherSub's
		OnReject: func(_ *http.Request, err error) { rejected <- err }})
	require.NoError(t, err)
	mux.Handle("/good", good.Middleware(goodX.Middleware(next)))
	mux.Handle("/wrong", wrong.Middleware(next))

	p, err := admin.Publish(ctx, client.PublishRequest{Event: "task.completed", Data: json.RawMessage(`{"task_id":"T123","robot_id":"R001"}`), ID: "evt-real"})
	require.NoError(t, err)
	select {
	case dl := <-got:
		require.NoError(t, dl.libErr, "standard-webhooks verifies webhookd's delivery")
		require.Equal(t, "evt-real", dl.ev.ID)
		require.Equal(t, "task.completed", dl.ev.Type)
		require.JSONEq(t, `{"task_id":"T123","robot_id":"R001"}`, string(dl.ev.Data))
		require.Equal(t, sub.ID, dl.ev.SubscriptionID)
		require.Equal(t, 1, dl.ev.Attempt)
		require.NotEmpty(t, dl.ev.DeliveryID)
	case <-time.After(30 * time.Second):
		t.Fatalf("no verified delivery of %s", p.ID)
	}
	select {
	case err := <-rejected:
		require.ErrorIs(t, err, receiver.ErrSignature)
	case <-time.After(30 * time.Second):
		t.Fatal("the wrong secret's delivery was not rejected")
	}
	require.Eventually(t, func() bool {
		page, err := admin.ListDeliveries(ctx, client.DeliveryQuery{Subscription: otherSub.ID})
		return err == nil && len(page.Items) == 1 && page.Items[0].Status == "failed" &&
			len(page.Items[0].Attempts) == 1 && page.Items[0].Attempts[0].StatusCode == http.StatusUnauthorized
	}, 30*time.Second, 20*time.Millisecond, "webhookd records the 401")
}

// During a rotation's grace period a receiver holding the old secret and
// one holding the new both verify real deliveries, in both schemes; after
// it, only the new one does.
func TestRealDeliveriesDuringARotation(t *testing.T) {
	t.Parallel()
	const grace = 5 * time.Second
	d := daemontest.Start(t, webhookdBin, "--secret-grace", grace.String())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin := d.Client(t)

	type result struct {
		id  string
		oks map[string]bool // verifier name → accepted
	}
	got := make(chan result, 16)
	mux := http.NewServeMux()
	rcv := httptest.NewServer(mux)
	t.Cleanup(rcv.Close)
	sub, err := admin.CreateSubscription(ctx, client.SubscriptionInput{URL: rcv.URL + "/", Events: []string{"task.*"}})
	require.NoError(t, err)
	oldS := sub.Secret
	rotated, err := admin.SubscriptionAction(ctx, sub.ID, "rotate-secret")
	require.NoError(t, err)
	rotatedAt := time.Now()
	newS := rotated.Secret
	require.NotEqual(t, oldS, newS)

	verifiers := map[string]*receiver.Verifier{}
	for name, cfg := range map[string]receiver.Config{
		"old/standard": {Secrets: []string{oldS}, Scheme: receiver.SchemeStandard},
		"old/x":        {Secrets: []string{oldS}, Scheme: receiver.SchemeXWebhook},
		"new/standard": {Secrets: []string{newS}, Scheme: receiver.SchemeStandard},
		"new/x":        {Secrets: []string{newS}, Scheme: receiver.SchemeXWebhook},
	} {
		verifiers[name], err = receiver.New(cfg)
		require.NoError(t, err)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		res := result{oks: map[string]bool{}}
		for name, v := range verifiers {
			ev, err := v.Verify(r.Header, raw)
			res.oks[name] = err == nil
			if err == nil {
				res.id = ev.ID
			}
		}
		got <- res
	})
	publish := func(id string) result {
		t.Helper()
		_, err := admin.Publish(ctx, client.PublishRequest{Event: "task.created", ID: id, Data: json.RawMessage(`{"task_id":"T1"}`)})
		require.NoError(t, err)
		select {
		case res := <-got:
			require.Equal(t, id, res.id)
			return res
		case <-time.After(30 * time.Second):
			t.Fatalf("%s not delivered", id)
			return result{}
		}
	}
	during := publish("evt-during")
	require.Less(t, time.Since(rotatedAt), grace, "the machine is too slow to publish within the grace period")
	require.Equal(t, map[string]bool{"old/standard": true, "old/x": true, "new/standard": true, "new/x": true}, during.oks)

	require.Eventually(t, func() bool { return time.Since(rotatedAt) > grace+time.Second }, 2*grace, 50*time.Millisecond)
	after := publish("evt-after")
	require.Equal(t, map[string]bool{"old/standard": false, "old/x": false, "new/standard": true, "new/x": true}, after.oks)
}
