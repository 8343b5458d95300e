package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// fillAndThin writes n 1 KiB values into a bucket (and a nested one) of a
// new bbolt file at path, then deletes all but every tenth: the file keeps
// its size.
func fillAndThin(t *testing.T, path string, n int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	value := bytes.Repeat([]byte("v"), 1024)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("deliveries"))
		if err != nil {
			return err
		}
		if err := b.SetSequence(42); err != nil {
			return err
		}
		nested, err := b.CreateBucket([]byte("by_subscription"))
		if err != nil {
			return err
		}
		for i := range n {
			if err := b.Put(key(i), value); err != nil {
				return err
			}
			if err := nested.Put(key(i), []byte("x")); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("deliveries"))
		for i := range n {
			if i%10 != 0 {
				if err := b.Delete(key(i)); err != nil {
					return err
				}
			}
		}
		return nil
	}))
}

func key(i int) []byte { return fmt.Appendf(nil, "k%06d", i) }

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	return info.Size()
}

func TestCompactShrinksTheFileAndKeepsTheData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, dbFile)
	const n = 5000
	fillAndThin(t, path, n)
	before := fileSize(t, path)

	var out bytes.Buffer
	env := func(k string) (string, bool) { // the data dir as webhookd reads it
		if k == "WEBHOOKD_DATA_DIR" {
			return dir, true
		}
		return "", false
	}
	require.NoError(t, run(context.Background(), []string{"compact"}, env, &out))

	t.Log(strings.TrimSpace(out.String()))
	after := fileSize(t, path)
	require.Less(t, after, before/4, "a tenth of the data is left")
	require.Equal(t, fmt.Sprintf("compacted %s: %d -> %d bytes (%s -> %s)\n", path, before, after, size(before), size(after)), out.String())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left behind")
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("deliveries"))
		require.NotNil(t, b)
		require.EqualValues(t, 42, b.Sequence())
		for i := range n {
			if i%10 == 0 {
				require.Equal(t, bytes.Repeat([]byte("v"), 1024), b.Get(key(i)), "key %d", i)
			} else {
				require.Nil(t, b.Get(key(i)), "key %d was deleted", i)
			}
		}
		require.Equal(t, n, b.Bucket([]byte("by_subscription")).Stats().KeyN)
		return nil
	}))
}

func TestCompactRefusesWhileWebhookdRuns(t *testing.T) {
	t.Parallel()
	d := start(t)
	args := []string{"compact", "--data-dir", d.dataDir}
	err := run(context.Background(), args, noEnv, &bytes.Buffer{})
	require.ErrorContains(t, err, filepath.Join(d.dataDir, dbFile)+" is in use by a running webhookd; stop it first")
	replica := replicaOf(t, d.logs.String())
	require.NoError(t, d.stop())

	// Stopped, its file compacts, and webhookd starts again on it as the same replica.
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), args, noEnv, &out))
	require.Contains(t, out.String(), "compacted "+filepath.Join(d.dataDir, dbFile))
	again := start(t, "--data-dir", d.dataDir)
	require.Equal(t, replica, replicaOf(t, again.logs.String()))
}

// replicaOf finds the replica id in webhookd's JSON logs.
func replicaOf(t *testing.T, logs string) string {
	t.Helper()
	const field = `"replica":"`
	i := strings.Index(logs, field)
	require.GreaterOrEqual(t, i, 0, logs)
	rest := logs[i+len(field):]
	return rest[:strings.IndexByte(rest, '"')]
}

func TestCompactErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		args     []string
		mentions string
	}{
		{[]string{"compact", "--data-dir", dir}, "compact: no database at " + filepath.Join(dir, dbFile)},
		{[]string{"compact", "--data-dir", filepath.Join(dir, "missing")}, "no database at " + filepath.Join(dir, "missing", dbFile)},
		{[]string{"compact", "--colour", "red"}, "compact: flag provided but not defined: -colour"},
		{[]string{"compact", "--data-dir", dir, "now"}, `compact: unexpected argument "now"`},
	}
	for _, tt := range tests {
		require.ErrorContains(t, run(context.Background(), tt.args, noEnv, &bytes.Buffer{}), tt.mentions, tt.args)
	}
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"compact", "--help"}, noEnv, &out))
	require.Contains(t, out.String(), "Usage: webhookd compact [--data-dir DIR]")
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"--help"}, noEnv, &out))
	require.Contains(t, out.String(), "compact [--data-dir DIR]", "webhookd --help names the subcommand")
}

// TestOpenRefusesAFileReplacedWhileWaitingForTheLock replays the race of a
// webhookd starting during a compaction: it opens webhooks.db, waits for the
// lock, the compaction renames its copy over the path and releases the lock.
// The starting webhookd must not run on the replaced file.
func TestOpenRefusesAFileReplacedWhileWaitingForTheLock(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc/self/fd to see the waiting open")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, dbFile)
	holder, err := bolt.Open(path, 0o600, nil) // the compaction's lock
	require.NoError(t, err)

	errc := make(chan error, 1)
	go func() {
		db, err := openDB(path, bolt.Options{Timeout: 20 * time.Second})
		if err == nil {
			_ = db.Close()
		}
		errc <- err
	}()
	require.Eventually(t, func() bool { return openCount(path) == 2 }, 10*time.Second, 5*time.Millisecond,
		"the second open of %s", path)

	replacement := filepath.Join(dir, "copy.db")
	copyDB, err := bolt.Open(replacement, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, copyDB.Close())
	require.NoError(t, os.Rename(replacement, path))
	require.NoError(t, holder.Close())

	require.ErrorContains(t, <-errc, path+" was replaced while it was being opened")
	db, err := openDB(path, bolt.Options{Timeout: time.Second})
	require.NoError(t, err, "the next start opens the new file")
	require.NoError(t, db.Close())
}

// openCount is how many of this process's file descriptors have path open.
func openCount(path string) int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}
