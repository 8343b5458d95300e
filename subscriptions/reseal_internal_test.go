package subscriptions

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// TestResealFinishesFromItsJournalAfterACrash stops a reseal right after
// its purge, as a crash would, with the bucket empty; meanwhile another
// replica writes one of the keys. The next Reseal writes the journal's
// records back, sealed, and its tombstone, leaves the newer write alone,
// and is repeated until one runs without a write from elsewhere, then
// never again with that key.
func TestResealFinishesFromItsJournalAfterACrash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := jstest.RunProvisioned(t)
	kv, err := ns.JS.KeyValue(ctx, jetstream.BucketSubscriptions)
	require.NoError(t, err)
	db, err := bolt.Open(filepath.Join(t.TempDir(), "m.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	log := zerolog.New(zerolog.NewTestWriter(t))

	// Records as a replica without a key writes them: plaintext secrets.
	put := func() Subscription {
		secret, err := signature.NewSecret()
		require.NoError(t, err)
		sub := Subscription{ID: uuid.NewString(), URL: "https://a.example/hook", Events: []string{"task.completed"}, Secret: secret, Active: true}
		v, err := codec{}.encode(sub)
		require.NoError(t, err)
		require.Contains(t, string(v), "whsec_")
		_, err = kv.Create(ctx, sub.ID, v)
		require.NoError(t, err)
		return sub
	}
	kept, overwritten, deleted := put(), put(), put()
	require.NoError(t, kv.Delete(ctx, deleted.ID))

	raw := make([]byte, KeySize)
	_, err = rand.Read(raw)
	require.NoError(t, err)
	key, err := NewKey(raw)
	require.NoError(t, err)
	s, err := Open(kv, db, log, WithSecretKey(key))
	require.NoError(t, err)

	// The first reseal's snapshot, journal and purge, then a "crash".
	journal, upTo, err := s.snapshot(ctx)
	require.NoError(t, err)
	require.Len(t, journal, 3)
	require.NoError(t, s.writeJournal(journal, upTo))
	str, err := ns.JS.Stream(ctx, "KV_"+jetstream.BucketSubscriptions)
	require.NoError(t, err)
	require.NoError(t, str.Purge(ctx, natsjs.WithPurgeSequence(upTo+1)))
	_, err = kv.Get(ctx, kept.ID)
	require.ErrorIs(t, err, natsjs.ErrKeyNotFound, "the bucket is empty after the purge")
	newer := []byte(`{"written":"by another replica"}`)
	_, err = kv.Put(ctx, overwritten.ID, newer)
	require.NoError(t, err)

	rep, err := s.Reseal(ctx, ns.JS)
	require.NoError(t, err)
	require.True(t, rep.Done)
	require.Equal(t, 1, rep.Records, "the overwritten key is left to its newer write")
	require.Equal(t, 1, rep.Tombstones)

	e, err := kv.Get(ctx, kept.ID)
	require.NoError(t, err)
	require.NotContains(t, string(e.Value()), "whsec_")
	back, plainLeft, err := s.codec.decode(e.Value())
	require.NoError(t, err)
	require.False(t, plainLeft)
	require.Equal(t, kept.Secret, back.Secret, "the secret survives, sealed")
	e, err = kv.Get(ctx, overwritten.ID)
	require.NoError(t, err)
	require.Equal(t, newer, e.Value())
	_, err = kv.Get(ctx, deleted.ID)
	require.ErrorIs(t, err, natsjs.ErrKeyNotFound)
	hist, err := kv.History(ctx, deleted.ID)
	require.NoError(t, err)
	require.Equal(t, natsjs.KeyValueDelete, hist[len(hist)-1].Operation(), "the tombstone is back, for mirrors that missed the delete")

	// The other replica's write came after the journal's snapshot: this
	// reseal cannot tell whether its purge removed every old block, so the
	// next one does it again, and then it is done for this key.
	require.False(t, rep.Clean)
	again, err := s.Reseal(ctx, ns.JS)
	require.NoError(t, err)
	require.True(t, again.Done)
	require.True(t, again.Clean)
	require.Equal(t, 2, again.Records, "every record written back, the other replica's as it was")
	require.Equal(t, 1, again.Tombstones)
	e, err = kv.Get(ctx, overwritten.ID)
	require.NoError(t, err)
	require.Equal(t, newer, e.Value())
	last, err := s.Reseal(ctx, ns.JS)
	require.NoError(t, err)
	require.False(t, last.Done, "once per key")
}

// TestResealOfAnEmptyBucketIsDoneOnce checks that a bucket without a
// message (never used, or emptied) is resealed once, cleanly, not at every
// start.
func TestResealOfAnEmptyBucketIsDoneOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := jstest.RunProvisioned(t)
	kv, err := ns.JS.KeyValue(ctx, jetstream.BucketSubscriptions)
	require.NoError(t, err)
	_, err = kv.Put(ctx, uuid.NewString(), []byte(`{}`))
	require.NoError(t, err)
	str, err := ns.JS.Stream(ctx, "KV_"+jetstream.BucketSubscriptions)
	require.NoError(t, err)
	require.NoError(t, str.Purge(ctx), "emptied, its last sequence kept")
	db, err := bolt.Open(filepath.Join(t.TempDir(), "m.db"), 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	raw := make([]byte, KeySize)
	_, err = rand.Read(raw)
	require.NoError(t, err)
	key, err := NewKey(raw)
	require.NoError(t, err)
	s, err := Open(kv, db, zerolog.New(zerolog.NewTestWriter(t)), WithSecretKey(key))
	require.NoError(t, err)
	rep, err := s.Reseal(ctx, ns.JS)
	require.NoError(t, err)
	require.True(t, rep.Done)
	require.True(t, rep.Clean)
	rep, err = s.Reseal(ctx, ns.JS)
	require.NoError(t, err)
	require.False(t, rep.Done, "once per key")
}
