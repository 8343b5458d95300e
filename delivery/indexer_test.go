package delivery_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/jetstream"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// A record the index refuses (a key over bbolt's limit) is dropped from the
// index alone: the records around it are indexed, not held back for good.
func TestIndexerDropsOnlyTheRecordItCannotStore(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	store := openStore(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	publish := func(rec delivery.Record) {
		b, err := json.Marshal(rec)
		require.NoError(t, err)
		_, err = ns.JS.Publish(ctx, jetstream.AuditSubject("s1"), b)
		require.NoError(t, err)
	}
	publish(attemptRec("before", "s1", "e1", 1, delivery.StatusSucceeded, at))
	bad := attemptRec("huge", "s1", strings.Repeat("e", 40_000), 1, delivery.StatusSucceeded, at) // event-id key over 32 KiB
	publish(bad)
	publish(attemptRec("after", "s1", "e3", 1, delivery.StatusSucceeded, at))

	ix := delivery.NewIndexer(delivery.IndexerConfig{Replica: "r1", Retention: time.Hour}, ns.JS, store, zerolog.New(zerolog.NewTestWriter(t)))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ix.Run(runCtx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	require.NoError(t, ix.WaitApplied(wctx, 3), "the index moves past the refused record")
	for _, id := range []string{"before", "after"} {
		_, err := store.Get(id)
		require.NoError(t, err, id)
	}
	_, err := store.Get("huge")
	require.ErrorIs(t, err, delivery.ErrNotFound)
}
