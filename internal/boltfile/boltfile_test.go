package boltfile_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/robotlab/webhookd/internal/boltfile"

	"github.com/robotlab/webhookd/internal/daemontest"
)

var (
	bucket  = []byte("data")
	stamp   = time.Date(2026, 12, 7, 23, 1, 30, 0, time.UTC)
	asideAs = ".damaged-20261207T2301Z"
)

// warnings returns the messages of the lines logged at warn or above.
func warnings(t *testing.T, log *daemontest.Buffer) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		if line == "" {
			continue
		}
		var l struct{ Level, Message string }
		require.NoError(t, json.Unmarshal([]byte(line), &l), line)
		if l.Level == "warn" || l.Level == "error" {
			out = append(out, l.Message)
		}
	}
	return out
}

// writeFile writes a real bbolt file with 500 keys in one bucket, enough
// for the bucket to have a branch page over leaf pages, and returns its
// path and the bucket's root page.
func writeFile(t *testing.T) (string, uint64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "webhookd.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	var root uint64
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucket)
		if err != nil {
			return err
		}
		for i := range 500 {
			if err := b.Put(fmt.Appendf(nil, "key-%04d", i), bytes.Repeat([]byte{'v'}, 100)); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		root = uint64(tx.Bucket(bucket).Root())
		return nil
	}))
	require.NoError(t, db.Close())
	require.NotZero(t, root, "the bucket must have pages of its own, not be inline")
	return path, root
}

// overwrite writes n zero bytes at off in the file at path.
func overwrite(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(make([]byte, n), off)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func open(t *testing.T, path string, log *daemontest.Buffer) *boltfile.File {
	t.Helper()
	f, err := boltfile.Open(path, boltfile.Options{Bolt: bolt.Options{Timeout: time.Second}, Now: func() time.Time { return stamp }},
		zerolog.New(log))
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// count returns how many keys the bucket holds (-1: no bucket).
func count(t *testing.T, f *boltfile.File) int {
	t.Helper()
	n := -1
	require.NoError(t, f.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucket); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	}))
	return n
}

func createBucket(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists(bucket)
	return err
}

func TestOpenKeepsAHealthyFile(t *testing.T) {
	t.Parallel()
	path, _ := writeFile(t)
	var log daemontest.Buffer
	f := open(t, path, &log)
	require.Empty(t, f.SetAside())
	require.Equal(t, 500, count(t, f))
	require.Empty(t, warnings(t, &log))
	reset := false
	require.NoError(t, f.OnReset(func(*bolt.Tx) error { reset = true; return nil }))
	require.False(t, reset, "a healthy file is not reset")
}

// Damage Open can see without reading the file's data: the file is set
// aside under a dated name and an empty one opened, with one warn line.
func TestOpenSetsAsideDamageItCanSee(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, root uint64)
	}{
		{"both meta pages overwritten", func(t *testing.T, path string, _ uint64) {
			overwrite(t, path, 0, 2*os.Getpagesize())
		}},
		{"truncated", func(t *testing.T, path string, _ uint64) {
			require.NoError(t, os.Truncate(path, int64(3*os.Getpagesize())))
		}},
		{"root page overwritten", func(t *testing.T, path string, _ uint64) {
			info, err := os.Stat(path)
			require.NoError(t, err)
			ps := int64(os.Getpagesize())
			db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
			require.NoError(t, err)
			var rootPage int64
			require.NoError(t, db.View(func(tx *bolt.Tx) error {
				rootPage = int64(tx.Cursor().Bucket().Root())
				return nil
			}))
			require.NoError(t, db.Close())
			require.Less(t, rootPage*ps, info.Size())
			overwrite(t, path, rootPage*ps, int(ps))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, root := writeFile(t)
			tc.damage(t, path, root)
			damaged, err := os.ReadFile(path)
			require.NoError(t, err)

			var log daemontest.Buffer
			f := open(t, path, &log)
			require.Equal(t, path+asideAs, f.SetAside())
			kept, err := os.ReadFile(path + asideAs)
			require.NoError(t, err)
			require.Equal(t, damaged, kept, "the damaged file is kept as it was")
			warns := warnings(t, &log)
			require.Len(t, warns, 1, "one warn line")
			require.Contains(t, warns[0], "set aside")

			require.Equal(t, -1, count(t, f), "the new file is empty")
			require.NoError(t, f.OnReset(createBucket), "an owner registering after Open resets too")
			require.Equal(t, 0, count(t, f))
		})
	}
}

// A file another process holds is not judged, even when it looks damaged
// (here its meta pages were overwritten under that process): Open waits for
// the lock, fails as bbolt does, and renames nothing.
func TestOpenLeavesAFileInUseAlone(t *testing.T) {
	t.Parallel()
	path, _ := writeFile(t)
	holder, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	require.NoError(t, err)
	defer holder.Close()
	overwrite(t, path, 0, 2*os.Getpagesize())

	var log daemontest.Buffer
	_, err = boltfile.Open(path, boltfile.Options{Bolt: bolt.Options{Timeout: 200 * time.Millisecond}}, zerolog.New(&log))
	require.ErrorIs(t, err, bolterrors.ErrTimeout)
	aside, err := filepath.Glob(path + ".damaged-*")
	require.NoError(t, err)
	require.Empty(t, aside)
	require.FileExists(t, path)
	require.Empty(t, warnings(t, &log))
}

// Damage in the data, which Open does not read: the transaction that meets
// it returns ErrDamaged instead of panicking, the file is replaced and the
// reset functions run in the new one before anything else sees it.
func TestDamageFoundLaterReplacesTheFile(t *testing.T) {
	t.Parallel()
	read := func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(_, _ []byte) error { return nil })
	}
	write := func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte("key-0250"), []byte("new")) }
	for _, tc := range []struct {
		name string
		run  func(f *boltfile.File) error
	}{
		{"View", func(f *boltfile.File) error { return f.View(read) }},
		{"Update", func(f *boltfile.File) error { return f.Update(write) }},
		{"Batch", func(f *boltfile.File) error { return f.Batch(write) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, root := writeFile(t)
			overwrite(t, path, int64(root)*int64(os.Getpagesize()), os.Getpagesize())

			var log daemontest.Buffer
			f := open(t, path, &log)
			require.Empty(t, f.SetAside(), "Open does not read the bucket's pages")
			resets := 0
			require.NoError(t, f.OnReset(func(tx *bolt.Tx) error { resets++; return createBucket(tx) }))

			err := tc.run(f)
			require.ErrorIs(t, err, boltfile.ErrDamaged)
			require.Contains(t, err.Error(), "bbolt panicked")
			require.Equal(t, 1, resets)
			require.FileExists(t, path+asideAs)
			require.Len(t, warnings(t, &log), 1)

			require.NoError(t, tc.run(f), "the new file serves")
			require.Equal(t, 1, resets)
			require.Len(t, warnings(t, &log), 1)
		})
	}
}

// A file truncated under a running process: bbolt's mapping reaches past
// the file's end, and reading there faults (SIGBUS), which without
// SetPanicOnFault ends the process ("fatal error: fault"). A write
// transaction faults again in its rollback, which reads the freelist: on
// bbolt's batch goroutine that too ended the process.
func TestFaultOfATruncatedMappingIsRecovered(t *testing.T) {
	t.Parallel()
	read := func(tx *bolt.Tx) error { return tx.Bucket(bucket).ForEach(func(_, _ []byte) error { return nil }) }
	write := func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte("key-0250"), []byte("new")) }
	for _, tc := range []struct {
		name string
		run  func(f *boltfile.File) error
	}{
		{"View", func(f *boltfile.File) error { return f.View(read) }},
		{"Update", func(f *boltfile.File) error { return f.Update(write) }},
		{"Batch", func(f *boltfile.File) error { return f.Batch(write) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, _ := writeFile(t)
			var log daemontest.Buffer
			f := open(t, path, &log)
			require.NoError(t, f.OnReset(createBucket))
			require.NoError(t, os.Truncate(path, int64(2*os.Getpagesize())))

			err := tc.run(f)
			require.ErrorIs(t, err, boltfile.ErrDamaged)
			require.Contains(t, err.Error(), "memory fault")
			require.Equal(t, 0, count(t, f))
			require.Len(t, warnings(t, &log), 1)
			require.NoError(t, tc.run(f), "the new file serves")
		})
	}
}

// Concurrent Batch calls share transactions, and each gets its own
// function's error back; a failing function runs alone, not failing the
// others.
func TestBatchSharesTransactions(t *testing.T) {
	t.Parallel()
	path, _ := writeFile(t)
	var log daemontest.Buffer
	f := open(t, path, &log)
	refused := errors.New("refused")
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Go(func() {
			errs[i] = f.Batch(func(tx *bolt.Tx) error {
				if i == 7 {
					return refused
				}
				return tx.Bucket(bucket).Put(fmt.Appendf(nil, "batch-%02d", i), []byte("v"))
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == 7 {
			require.ErrorIs(t, err, refused)
		} else {
			require.NoError(t, err, i)
		}
	}
	require.Equal(t, 500+49, count(t, f))
	require.Empty(t, warnings(t, &log))
}

// Many goroutines meet the damage at once: the file is replaced once.
func TestConcurrentDamageReplacesOnce(t *testing.T) {
	t.Parallel()
	path, root := writeFile(t)
	overwrite(t, path, int64(root)*int64(os.Getpagesize()), os.Getpagesize())
	var log daemontest.Buffer
	f := open(t, path, &log)
	require.NoError(t, f.OnReset(createBucket))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			errs <- f.View(func(tx *bolt.Tx) error { return tx.Bucket(bucket).ForEach(func(_, _ []byte) error { return nil }) })
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			require.True(t, errors.Is(err, boltfile.ErrDamaged), err)
		}
	}
	require.Len(t, warnings(t, &log), 1)
	_, err := os.Stat(path + asideAs + "-2")
	require.ErrorIs(t, err, os.ErrNotExist, "set aside once")
}
