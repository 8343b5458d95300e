package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	"github.com/robotlab/webhookd/admin/client"
)

// bucketPages returns the root page of each top-level bucket of the bbolt
// file at path that keep selects and that has pages of its own (a small
// bucket is stored inline in its parent), and the file's page size.
func bucketPages(t *testing.T, path string, keep func(name string) bool) ([]int64, int64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	require.NoError(t, err)
	defer db.Close()
	var pages []int64
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			if keep(string(name)) && b.Root() != 0 {
				pages = append(pages, int64(b.Root()))
			}
			return nil
		})
	}))
	return pages, int64(db.Info().PageSize)
}

// zeroPages overwrites the given pages of the file at path with zeros, as
// a disk or a careless hand might while webhookd is stopped.
func zeroPages(t *testing.T, path string, pages []int64, pageSize int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	require.NoError(t, err)
	for _, p := range pages {
		_, err := f.WriteAt(make([]byte, pageSize), p*pageSize)
		require.NoError(t, err)
	}
	require.NoError(t, f.Close())
}

// The bbolt file damaged while webhookd was stopped (issue 22 item 2).
// Before internal/boltfile each of these crashed the replica: the history's
// pages in the history store's open, its index pages in whichever read
// them first (the handler of GET /v1/deliveries, the queue's sweepHeld, the
// indexer's putIndexes or, here, its retention sweep at start); the
// mirror's pages in subscriptions.Open; the root page in the replica id's
// transaction; a truncated file in bbolt.Open. Now the replica starts, sets
// the file aside under a dated name with one warn line, rebuilds the mirror
// from the KV bucket and the index from AUDIT, and serves every delivery
// again.
func TestDamagedBoltFileIsSetAsideAndRebuilt(t *testing.T) {
	t.Parallel()
	mirror := func(name string) bool { return name == "subs" }
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
		// metByAPI: nothing reads the damaged pages before a query of
		// the API does (ready, then a handler panic before the fix).
		metByAPI bool
	}{
		{"history pages overwritten", func(t *testing.T, path string) {
			pages, ps := bucketPages(t, path, func(name string) bool {
				return name != "meta" && name != "delivery_meta" && !mirror(name)
			})
			require.GreaterOrEqual(t, len(pages), 2, "the history has pages of its own")
			zeroPages(t, path, pages, ps)
		}, false},
		{"history index pages overwritten", func(t *testing.T, path string) {
			// Not the deliveries themselves, which the store reads at
			// open: the damage is met later, by the first reader of an
			// index (the API, the queue's sweep or the indexer).
			pages, ps := bucketPages(t, path, func(name string) bool {
				return name != "meta" && name != "delivery_meta" && name != "deliveries" && !mirror(name)
			})
			require.GreaterOrEqual(t, len(pages), 2, "the indexes have pages of their own")
			zeroPages(t, path, pages, ps)
		}, false},
		{"event index pages overwritten", func(t *testing.T, path string) {
			// The index of event ids, which only a query by event id
			// reads (the name is the history store's; if it changes, so
			// must this).
			pages, ps := bucketPages(t, path, func(name string) bool { return name == "dx_event_created" })
			require.Len(t, pages, 1, "the event index has pages of its own")
			zeroPages(t, path, pages, ps)
		}, true},
		{"mirror pages overwritten", func(t *testing.T, path string) {
			pages, ps := bucketPages(t, path, mirror)
			require.Len(t, pages, 1, "the mirror has pages of its own")
			zeroPages(t, path, pages, ps)
		}, false},
		{"root page overwritten", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
			require.NoError(t, err)
			var root int64
			require.NoError(t, db.View(func(tx *bolt.Tx) error { root = int64(tx.Cursor().Bucket().Root()); return nil }))
			ps := int64(db.Info().PageSize)
			require.NoError(t, db.Close())
			zeroPages(t, path, []int64{root}, ps)
		}, false},
		{"truncated", func(t *testing.T, path string) {
			// The meta pages alone. Here bbolt's Open read zeros for the
			// freelist past the end and panicked ("invalid freelist
			// page"); a read the mapping faults on (SIGBUS) is tested in
			// internal/boltfile.
			require.NoError(t, os.Truncate(path, 2*int64(os.Getpagesize())))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const events = 30
			d := start(t)
			dir, token := d.dataDir, d.token
			rcv, got := receiver(t)
			sub := subscribe(t, d, rcv.URL, "task.created")
			for i := range 6 { // enough records for the mirror to have a page of its own
				subscribe(t, d, fmt.Sprintf("%s/other-%d", rcv.URL, i), "task.completed")
			}
			for i := range events {
				require.Equal(t, http.StatusAccepted, d.call(t, "POST", "/v1/events", token,
					fmt.Sprintf(`{"event":"task.created","data":{"n":%d},"id":"ev-%d"}`, i, i), nil))
			}
			for range events {
				next(t, got)
			}
			want := succeeded(t, d, token, sub.ID, events)
			require.NoError(t, d.stop())
			path := filepath.Join(dir, dbFile)
			tc.damage(t, path)

			d = start(t, "--data-dir", dir)
			d.dataDir, d.token = dir, token
			if tc.metByAPI {
				code, _ := d.readyz(t)
				require.Equal(t, http.StatusOK, code)
				require.NotContains(t, d.logs.String(), "bbolt file damaged", "nothing met the damage yet")
				var e apiErr
				require.Equal(t, http.StatusServiceUnavailable, d.call(t, "GET", "/v1/deliveries?event=ev-3", token, "", &e))
				require.Contains(t, e.Error.Message, "being rebuilt from AUDIT")
			}
			// Until the index is rebuilt the API says so (503); it never
			// fails otherwise, and then serves every delivery again.
			var list client.List[client.Delivery]
			codes := map[int]int{}
			waitFor(t, func() bool {
				list.Items = nil
				code := d.call(t, "GET", "/v1/deliveries?limit=100&subscription="+sub.ID, token, "", &list)
				codes[code]++
				return code == http.StatusOK && len(list.Items) == events
			})
			delete(codes, http.StatusServiceUnavailable)
			require.Equal(t, map[int]int{http.StatusOK: 1}, codes, "503 while rebuilding, then the whole history\n%s", d.logs.String())
			require.Equal(t, want, ids(list.Items))

			logs := d.logs.String()
			require.Equal(t, 1, strings.Count(logs, "bbolt file damaged"), "one warn line")
			require.Equal(t, 1, strings.Count(logs, "boltfile: damaged file"), "and no other line about the damage")
			require.Equal(t, "warn", logLevelOf(t, logs, "bbolt file damaged: set aside; rebuilding it from NATS (subscriptions from the KV bucket, delivery history from AUDIT)"))
			aside, err := filepath.Glob(path + ".damaged-20*Z")
			require.NoError(t, err)
			require.Len(t, aside, 1, "the damaged file is set aside under a dated name")
			// The mirror was rebuilt after the damage was found, and readyz
			// waited for it (Ready is replaced until it has caught up).
			warnAt := strings.Index(logs, "bbolt file damaged")
			require.Contains(t, logs[warnAt:], `"rebuild":true`)
			require.Contains(t, logs[warnAt:], "subscription mirror caught up")
			code, _ := d.readyz(t)
			require.Equal(t, http.StatusOK, code)

			// And the replica works on: the subscription is served, and a
			// new event is delivered and listed.
			require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/subscriptions/"+sub.ID, token, "", nil))
			require.Equal(t, http.StatusAccepted, d.call(t, "POST", "/v1/events", token,
				`{"event":"task.created","data":{},"id":"ev-after"}`, nil))
			require.Equal(t, "task.created", next(t, got).Header.Get("X-Webhook-Event"))
			succeeded(t, d, token, sub.ID, events+1)
		})
	}
}

// succeeded waits until the subscription's n deliveries have succeeded
// and returns their ids, sorted.
func succeeded(t *testing.T, d *daemon, token, subID string, n int) []string {
	t.Helper()
	var list client.List[client.Delivery]
	waitFor(t, func() bool {
		d.call(t, "GET", "/v1/deliveries?limit=100&status=succeeded&subscription="+subID, token, "", &list)
		return len(list.Items) == n
	})
	return ids(list.Items)
}

func ids(ds []client.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	slices.Sort(out)
	return out
}
