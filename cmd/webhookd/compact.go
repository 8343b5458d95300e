package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/robotlab/webhookd/config"
)

// dbFile is the bbolt file in the data dir.
const dbFile = "webhooks.db"

// lockTimeout is how long opening the bbolt file waits for its lock, which a
// running webhookd holds.
const lockTimeout = 2 * time.Second

// compactTxSize bounds each write transaction of the copy, so memory stays
// flat however large the file.
const compactTxSize = 4 << 20

const compactUsage = "rewrite <data-dir>/" + dbFile + " without its free pages, offline (webhookd must be stopped)"

// compact runs "webhookd compact [--data-dir DIR]". bbolt never gives freed
// pages back to the file system: after a retention sweep or many deletions
// the file keeps its peak size. compact copies the live data into a new file
// in the same dir (bolt.Compact), syncs it and renames it over the old one,
// holding the old file's lock throughout, so it refuses while webhookd runs.
func compact(args []string, lookupEnv func(string) (string, bool), stdout io.Writer) error {
	fs := flag.NewFlagSet("webhookd compact", flag.ContinueOnError)
	fs.SetOutput(stdout)
	def := config.Default().DataDir
	if v, ok := lookupEnv(config.EnvName("data-dir")); ok && v != "" {
		def = v
	}
	dir := fs.String("data-dir", def, "data dir of the stopped webhookd (also "+config.EnvName("data-dir")+")")
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: webhookd compact [--data-dir DIR]\n\n%s.\n\nFlags:\n", compactUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("compact: unexpected argument %q", fs.Arg(0))
	}
	path := filepath.Join(*dir, dbFile)
	before, after, err := compactFile(path)
	if err != nil {
		return fmt.Errorf("compact: %w", err)
	}
	fmt.Fprintf(stdout, "compacted %s: %d -> %d bytes (%s -> %s)\n", path, before, after, size(before), size(after))
	return nil
}

// compactFile compacts the bbolt file at path in place and returns its sizes
// before and after.
func compactFile(path string) (before, after int64, err error) {
	info, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, fmt.Errorf("no database at %s (is --data-dir right?)", path)
	}
	if err != nil {
		return 0, 0, err
	}
	before = info.Size()
	src, err := openDB(path, bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return 0, 0, fmt.Errorf("%s is in use by a running webhookd; stop it first", path)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer src.Close()

	tmp, err := os.CreateTemp(filepath.Dir(path), dbFile+".compact-*")
	if err != nil {
		return 0, 0, fmt.Errorf("create the compacted copy: %w", err)
	}
	tmpPath := tmp.Name()
	renamed := false
	defer func() {
		if !renamed {
			_ = os.Remove(tmpPath)
		}
	}()
	if err := tmp.Close(); err != nil {
		return 0, 0, fmt.Errorf("create the compacted copy: %w", err)
	}
	// No sync per transaction: one Sync before the rename covers them all.
	dst, err := bolt.Open(tmpPath, 0o600, &bolt.Options{NoSync: true})
	if err != nil {
		return 0, 0, fmt.Errorf("open the compacted copy: %w", err)
	}
	err = bolt.Compact(dst, src, compactTxSize)
	if err == nil {
		err = dst.Sync()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, 0, fmt.Errorf("copy %s: %w", path, err)
	}
	if err := os.Rename(tmpPath, path); err != nil {
		return 0, 0, fmt.Errorf("replace %s: %w", path, err)
	}
	renamed = true
	if err := syncDir(filepath.Dir(path)); err != nil {
		return 0, 0, err
	}
	if info, err = os.Stat(path); err != nil {
		return 0, 0, err
	}
	return before, info.Size(), nil
}

// openDB opens and locks the bbolt file at path, then makes sure the file it
// locked is still the one at path: a compaction that renamed its copy over
// path while this process waited for the lock would leave it holding the
// replaced file, whose writes would be lost.
func openDB(path string, opts bolt.Options) (*bolt.DB, error) {
	var f *os.File
	openFile := opts.OpenFile
	if openFile == nil {
		openFile = os.OpenFile
	}
	opts.OpenFile = func(name string, flag int, mode os.FileMode) (*os.File, error) {
		var err error
		f, err = openFile(name, flag, mode)
		return f, err
	}
	db, err := bolt.Open(path, 0o600, &opts)
	if err != nil {
		return nil, err
	}
	if err := sameFile(f, path); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// sameFile returns an error unless f is the file at path.
func sameFile(f *os.File, path string) error {
	opened, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	current, err := os.Stat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if err != nil || !os.SameFile(opened, current) {
		return fmt.Errorf("%s was replaced while it was being opened (by webhookd compact?); start again", path)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// size formats n bytes for people.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
