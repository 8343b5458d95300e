package subscriptions_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/subscriptions"
)

func newKey(t *testing.T) *subscriptions.Key {
	t.Helper()
	raw := make([]byte, subscriptions.KeySize)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	k, err := subscriptions.ParseKey(base64.StdEncoding.EncodeToString(raw))
	require.NoError(t, err)
	return k
}

// rawKV returns the record of id exactly as the bucket holds it.
func rawKV(t *testing.T, kv natsjs.KeyValue, id string) string {
	t.Helper()
	e, err := kv.Get(context.Background(), id)
	require.NoError(t, err)
	return string(e.Value())
}

// rawMirror returns the record of id exactly as the bbolt mirror holds it.
func rawMirror(t *testing.T, db *bolt.DB, id string) string {
	t.Helper()
	var v string
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		v = string(tx.Bucket([]byte("subs")).Get([]byte(id)))
		return nil
	}))
	require.NotEmpty(t, v, "mirror has %s", id)
	return v
}

// requireNoSecret fails when raw holds any of the secrets, whole or as the
// base64 key part, or any plaintext "whsec_" value.
func requireNoSecret(t *testing.T, raw string, secrets ...string) {
	t.Helper()
	require.NotContains(t, raw, "whsec_")
	for _, s := range secrets {
		require.NotContains(t, raw, strings.TrimPrefix(s, "whsec_"))
	}
}

// rotate gives sub a new secret, keeping the old one as a previous secret,
// as the API's rotate-secret does.
func rotate(t *testing.T, s *subscriptions.Store, id string) subscriptions.Subscription {
	t.Helper()
	sub, err := s.Update(context.Background(), id, func(sub *subscriptions.Subscription) error {
		sub.PreviousSecrets = []subscriptions.PreviousSecret{{Secret: sub.Secret, ExpiresAt: time.Now().Add(time.Hour).UTC()}}
		sub.Secret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("a new secret of thirty-two bytes"))
		return nil
	})
	require.NoError(t, err)
	return sub
}

func TestSubscriptionDefaultJSONHasNoSecrets(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	sub := subscriptions.Subscription{
		ID: "6f1c0000-0000-4000-8000-000000000001", URL: "https://a.example/hook", Events: []string{"task.*"},
		Description: "d", Timeout: 10 * time.Second, MaxInFlight: 7, DisabledReason: "endpoint_gone", DisabledAt: at,
		FailingSince: at.Add(-time.Hour), Secret: "whsec_Y3VycmVudA==",
		PreviousSecrets: []subscriptions.PreviousSecret{{Secret: "whsec_b2xk", ExpiresAt: at}},
		CreatedAt:       at, UpdatedAt: at,
	}
	for name, v := range map[string]any{"subscription": sub, "pointer": &sub, "previous": sub.PreviousSecrets[0]} {
		b, err := json.Marshal(v)
		require.NoError(t, err, name)
		require.NotContains(t, string(b), "secret", name)
		require.NotContains(t, string(b), "Y3VycmVudA", name)
		require.NotContains(t, string(b), "b2xk", name)
	}
	b, err := json.Marshal(sub)
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"6f1c0000-0000-4000-8000-000000000001","url":"https://a.example/hook","events":["task.*"],
		"description":"d","timeout":"10s","active":false,"max_in_flight":7,"disabled_reason":"endpoint_gone",
		"disabled_at":"2026-01-02T03:04:05Z","failing_since":"2026-01-02T02:04:05Z",
		"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"}`, string(b))

	// The default form decodes back to everything but the secrets.
	var back subscriptions.Subscription
	require.NoError(t, json.Unmarshal(b, &back))
	want := sub
	want.Secret, want.PreviousSecrets = "", nil
	require.Equal(t, want, back)
}

func TestSecretsEncryptedAtRest(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	kv := bucket(t, ns.JS)
	key := newKey(t)
	r := startReplica(t, kv, filepath.Join(t.TempDir(), "a.db"), subscriptions.WithSecretKey(key))
	ctx := context.Background()

	created, err := r.store.Create(ctx, subscriptions.Subscription{URL: "https://a.example/hook", Events: []string{"task.completed"}})
	require.NoError(t, err)
	rotated := rotate(t, r.store, created.ID)
	require.Len(t, rotated.PreviousSecrets, 1)

	for where, raw := range map[string]string{"bucket": rawKV(t, kv, created.ID), "mirror": rawMirror(t, r.db, created.ID)} {
		requireNoSecret(t, raw, created.Secret, rotated.Secret)
		require.Equal(t, 2, strings.Count(raw, `"enc:v1:`+key.ID()+`:`), "%s: both secrets sealed with the key id: %s", where, raw)
		require.Contains(t, raw, "https://a.example/hook", "%s: other fields stay readable", where)
	}

	// Round trip: the mirror, the bucket and a restarted replica give the
	// secrets back.
	got, ok := r.store.Get(created.ID)
	require.True(t, ok)
	require.Equal(t, rotated.Secret, got.Secret)
	require.Equal(t, created.Secret, got.PreviousSecrets[0].Secret)
	fetched, err := r.store.Fetch(ctx, created.ID)
	require.NoError(t, err)
	require.Equal(t, got.LiveSecrets(time.Now()), fetched.LiveSecrets(time.Now()))

	b := startReplica(t, kv, filepath.Join(t.TempDir(), "b.db"), subscriptions.WithSecretKey(key))
	other, ok := b.store.Get(created.ID)
	require.True(t, ok)
	require.Equal(t, got.LiveSecrets(time.Now()), other.LiveSecrets(time.Now()))
}

func TestSecretKeyMissingOrWrong(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	kv := bucket(t, ns.JS)
	key, wrong := newKey(t), newKey(t)
	dir := t.TempDir()
	a := startReplica(t, kv, filepath.Join(dir, "a.db"), subscriptions.WithSecretKey(key))
	sub, err := a.store.Create(context.Background(), subscriptions.Subscription{URL: "https://a.example", Events: []string{"task.completed"}})
	require.NoError(t, err)
	a.stop()

	// open opens a store over path, keeping the file open only on success.
	open := func(path string, opts ...subscriptions.Option) (*subscriptions.Store, error) {
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
		require.NoError(t, err)
		s, err := subscriptions.Open(kv, db, zerolog.New(zerolog.NewTestWriter(t)), opts...)
		if err != nil {
			require.NoError(t, db.Close())
			return nil, err
		}
		t.Cleanup(func() { require.NoError(t, db.Close()) })
		return s, nil
	}

	// At start, from the mirror: a clear error naming the keys, never a panic.
	_, err = open(filepath.Join(dir, "a.db"))
	require.ErrorIs(t, err, subscriptions.ErrSecretKey)
	require.ErrorContains(t, err, "encrypted with key "+key.ID()+" and no key is configured")
	require.ErrorContains(t, err, sub.ID)
	require.NotContains(t, err.Error(), strings.TrimPrefix(sub.Secret, "whsec_"))
	require.NotContains(t, err.Error(), "enc:v1", "the sealed value is not repeated")

	_, err = open(filepath.Join(dir, "a.db"), subscriptions.WithSecretKey(wrong))
	require.ErrorIs(t, err, subscriptions.ErrSecretKey)
	require.ErrorContains(t, err, "encrypted with key "+key.ID()+", but the configured key is "+wrong.ID())

	// A fresh mirror learns of the record from the bucket: Run stops with
	// the same error, and Fetch reports it.
	for _, opts := range [][]subscriptions.Option{nil, {subscriptions.WithSecretKey(wrong)}} {
		s, err := open(filepath.Join(t.TempDir(), "fresh.db"), opts...)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = s.Run(ctx)
		cancel()
		require.ErrorIs(t, err, subscriptions.ErrSecretKey)
		_, err = s.Fetch(context.Background(), sub.ID)
		require.ErrorIs(t, err, subscriptions.ErrSecretKey)
	}

	// With the right key all is well.
	r, err := open(filepath.Join(dir, "a.db"), subscriptions.WithSecretKey(key))
	require.NoError(t, err)
	got, ok := r.Get(sub.ID)
	require.True(t, ok)
	require.Equal(t, sub.Secret, got.Secret)
}

func TestSealedSecretIsBoundToItsSubscription(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	kv := bucket(t, ns.JS)
	key := newKey(t)
	r := startReplica(t, kv, filepath.Join(t.TempDir(), "a.db"), subscriptions.WithSecretKey(key))
	ctx := context.Background()
	victim, err := r.store.Create(ctx, subscriptions.Subscription{URL: "https://victim.example", Events: []string{"task.completed"}})
	require.NoError(t, err)
	mine, err := r.store.Create(ctx, subscriptions.Subscription{URL: "https://mine.example", Events: []string{"task.completed"}})
	require.NoError(t, err)
	r.stop() // its mirror would stop on the altered record; Fetch reads the bucket

	// Someone with write access to the bucket copies the victim's sealed
	// secret into another record: it does not open there.
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(rawKV(t, kv, victim.ID)), &rec))
	sealed := rec["secret"]
	require.NoError(t, json.Unmarshal([]byte(rawKV(t, kv, mine.ID)), &rec))
	rec["secret"] = sealed
	b, err := json.Marshal(rec)
	require.NoError(t, err)
	_, err = kv.Put(ctx, mine.ID, b)
	require.NoError(t, err)
	_, err = r.store.Fetch(ctx, mine.ID)
	require.ErrorIs(t, err, subscriptions.ErrSecretKey)
	require.ErrorContains(t, err, "does not authenticate")
}

func TestPlaintextRecordsMigrateOnWrite(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	kv := bucket(t, ns.JS)
	path := filepath.Join(t.TempDir(), "a.db")
	ctx := context.Background()

	// Written before a key was configured: plaintext everywhere.
	old := startReplica(t, kv, path)
	sub, err := old.store.Create(ctx, subscriptions.Subscription{URL: "https://a.example", Events: []string{"task.completed"}})
	require.NoError(t, err)
	require.Contains(t, rawKV(t, kv, sub.ID), sub.Secret)
	require.Contains(t, rawMirror(t, old.db, sub.ID), sub.Secret)
	old.stop()

	// Restarted with a key: plaintext records are still read; the mirror is
	// encrypted at once, the bucket on the record's next write.
	key := newKey(t)
	r := startReplica(t, kv, path, subscriptions.WithSecretKey(key))
	got, ok := r.store.Get(sub.ID)
	require.True(t, ok)
	require.Equal(t, sub.Secret, got.Secret)
	requireNoSecret(t, rawMirror(t, r.db, sub.ID), sub.Secret)
	require.Contains(t, rawKV(t, kv, sub.ID), sub.Secret, "not rewritten until its next write")

	_, err = r.store.Update(ctx, sub.ID, func(s *subscriptions.Subscription) error { s.Description = "touched"; return nil })
	require.NoError(t, err)
	requireNoSecret(t, rawKV(t, kv, sub.ID), sub.Secret)
	requireNoSecret(t, rawMirror(t, r.db, sub.ID), sub.Secret)
	got, ok = r.store.Get(sub.ID)
	require.True(t, ok)
	require.Equal(t, sub.Secret, got.Secret, "the same secret, now sealed")
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i)
	}
	std := base64.StdEncoding.EncodeToString(raw)
	tests := []struct {
		name, in, err string
	}{
		{"standard", std, ""},
		{"standard with newline", std + "\n", ""},
		{"unpadded", base64.RawStdEncoding.EncodeToString(raw), ""},
		{"empty", "  \n", "empty"},
		{"not base64", "this is not base64!", "not base64"},
		{"too short", base64.StdEncoding.EncodeToString(raw[:16]), "16 bytes: want 32"},
		{"too long", base64.StdEncoding.EncodeToString(append(raw, 0)), "33 bytes: want 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := subscriptions.ParseKey(tt.in)
			if tt.err == "" {
				require.NoError(t, err)
				require.Len(t, k.ID(), 8)
				require.NotContains(t, k.String(), std)
				return
			}
			require.ErrorContains(t, err, tt.err)
			if in := strings.TrimSpace(tt.in); in != "" {
				require.NotContains(t, err.Error(), in, "the key is never repeated")
			}
		})
	}
	a, err := subscriptions.ParseKey(std)
	require.NoError(t, err)
	b, err := subscriptions.ParseKey(base64.RawStdEncoding.EncodeToString(raw))
	require.NoError(t, err)
	require.Equal(t, a.ID(), b.ID(), "the id depends on the key only")
}
