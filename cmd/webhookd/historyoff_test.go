package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// A replica run with --history=false keeps no index of AUDIT and answers
// history queries by asking a replica that indexes, over NATS (the
// webhookd-history service): deliveries made through either replica are
// listed and read through the one without. With no indexing replica left,
// it says so in one line (503).
func TestHistoryOffAsksAnIndexingReplica(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	const token = "5b1e8d3c9a7f2e4d6c0b8a1f3e5d7c9b"
	indexing := start(t, "--nats-url", ns.ClientURL(), "--admin-token", token)
	indexing.token = token
	off := start(t, "--nats-url", ns.ClientURL(), "--admin-token", token, "--history=false")
	off.token = token
	rcv, got := receiver(t)
	sub := subscribe(t, indexing, rcv.URL, "task.completed", off)

	const each = 3
	for i := range each {
		for _, d := range []*daemon{indexing, off} {
			body := fmt.Sprintf(`{"event":"task.completed","data":{"n":%d}}`, i)
			require.Equal(t, http.StatusAccepted, d.call(t, "POST", "/v1/events", token, body, nil))
		}
	}
	for range 2 * each {
		next(t, got)
	}

	var list client.List[client.Delivery]
	waitFor(t, func() bool {
		list = client.List[client.Delivery]{}
		off.call(t, "GET", "/v1/deliveries?status=succeeded&subscription="+sub.ID, token, "", &list)
		return len(list.Items) == 2*each
	})
	var one client.Delivery
	require.Equal(t, http.StatusOK, off.call(t, "GET", "/v1/deliveries/"+list.Items[0].ID, token, "", &one))
	require.Equal(t, list.Items[0].ID, one.ID)
	require.Len(t, one.Attempts, 1)
	require.Equal(t, http.StatusNotFound, off.call(t, "GET", "/v1/deliveries/no-such-delivery", token, "", nil))
	var withStats client.Subscription
	require.Equal(t, http.StatusOK, off.call(t, "GET", "/v1/subscriptions/"+sub.ID, token, "", &withStats))
	require.NotNil(t, withStats.Stats, "the delivery health read from the indexing replica")
	require.Equal(t, 2*each, withStats.Stats.Attempts1h)

	require.NoError(t, indexing.stop())
	var refused struct{ Error client.Error }
	status := off.call(t, "GET", "/v1/deliveries?subscription="+sub.ID, token, "", &refused)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, "no replica with --history answers", refused.Error.Message)
	require.Equal(t, http.StatusServiceUnavailable, off.call(t, "GET", "/v1/deliveries/"+one.ID, token, "", nil))

	// Its own bbolt file holds no index: only the subscription mirror.
	require.NoError(t, off.stop())
	db, err := bolt.Open(filepath.Join(off.dataDir, dbFile), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			require.False(t, strings.HasPrefix(string(name), "deliver"), "bucket %s in a replica without history", name)
			return nil
		})
	}))
}
