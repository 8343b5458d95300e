package boltfile

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrDamaged is wrapped by the error of a transaction that found the file
// damaged. By the time it is returned the file has been set aside and an
// empty one opened, so the caller may start over.
var ErrDamaged = errors.New("boltfile: damaged file")

// Options configures Open.
type Options struct {
	// Bolt is passed to bbolt when a file is opened (its Timeout applies to
	// the first open only; a replacement is opened by this process alone).
	Bolt bolt.Options
	// OpenDB opens the file at path; nil means bolt.Open with mode 0600.
	OpenDB func(path string, opts bolt.Options) (*bolt.DB, error)
	// Now stamps the name a damaged file is set aside under; nil means
	// time.Now.
	Now func() time.Time
}

// ResetFunc prepares a replacement file for its owner: it creates the
// owner's buckets in tx and starts the owner's rebuild. It runs while every
// other transaction on the File waits, so it must not start one itself.
type ResetFunc func(tx *bolt.Tx) error

// File is a bbolt file that is replaced by an empty one when found damaged.
// Its methods are safe for concurrent use. A function passed to View, Update
// or Batch must not run another transaction on the same File.
type File struct {
	path string
	opts Options
	log  zerolog.Logger

	mu     sync.RWMutex // read by every transaction, written by a replacement
	db     *bolt.DB     // nil after a replacement failed to open
	file   *os.File     // the handle bbolt opened db with
	gen    uint64       // replacements so far
	failed error        // why db is nil
	resets []ResetFunc
	bmu    sync.Mutex // guards batch
	batch  *batch     // the batch calls join, nil when none waits
	away   string     // where the last damaged file went
	atOpen string     // where the file found damaged at Open went, if it was
}

// Open opens the bbolt file at path. A file damaged in a way Open can see
// cheaply (see the package doc) is set aside, with one warn line, and an
// empty file is opened in its place; SetAside then names where it went. An
// error means no file could be opened (bbolt's ErrTimeout when another
// process holds its lock).
func Open(path string, opts Options, log zerolog.Logger) (*File, error) {
	if opts.OpenDB == nil {
		opts.OpenDB = func(path string, o bolt.Options) (*bolt.DB, error) { return bolt.Open(path, 0o600, &o) }
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := &File{path: path, opts: opts, log: log.With().Str("component", "boltfile").Logger()}
	problem, err := f.inspectLocked()
	if err != nil {
		return nil, err
	}
	if problem == nil {
		db, err := f.open(opts.Bolt)
		switch {
		case err == nil:
			f.db = db
			return f, nil
		case errors.Is(err, ErrDamaged):
			problem = err
		default:
			return nil, err
		}
	}
	// The lock of the damaged file was not kept (or never taken): take the
	// new one with the caller's timeout, as another process may hold it.
	if err := f.replace(problem, opts.Bolt); err != nil {
		return nil, err
	}
	return f, nil
}

// inspectLocked inspects the file (see inspect) under the lock bbolt
// takes, so that a file another process uses is never judged, let alone
// set aside: that process's lock makes it wait up to the Timeout of
// Options.Bolt, then fail with bbolt's ErrTimeout. It returns the damage
// found (problem) apart from a failure to inspect (err).
func (f *File) inspectLocked() (problem, err error) {
	unlock, err := lockFile(f.path, f.opts.Bolt.Timeout)
	if err != nil {
		return nil, err
	}
	defer unlock()
	err = inspect(f.path)
	if errors.Is(err, ErrDamaged) {
		return err, nil
	}
	return nil, err
}

// lockFile takes the exclusive flock bbolt takes on path, waiting up to
// timeout (0: for ever) as bbolt does. A missing file needs no lock.
func lockFile(path string, timeout time.Duration) (unlock func(), err error) {
	file, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(file.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = file.Close() }, nil // closing releases it
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = file.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if timeout > 0 && time.Now().After(deadline) {
			_ = file.Close()
			return nil, bolterrors.ErrTimeout
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// open opens the file at path, telling damage (an error wrapping ErrDamaged)
// from other failures.
func (f *File) open(o bolt.Options) (db *bolt.DB, err error) {
	var file *os.File
	err = guard(func() error {
		var err error
		db, file, err = f.openDB(o)
		return err
	})
	if db == nil && file != nil && errors.Is(err, ErrDamaged) {
		_ = file.Close() // bbolt's Open panicked, leaving it open and locked
	}
	if db != nil {
		f.file = file
	}
	for _, e := range []error{bolterrors.ErrInvalid, bolterrors.ErrChecksum, bolterrors.ErrVersionMismatch} {
		if errors.Is(err, e) {
			return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
		}
	}
	return db, err
}

// openDB opens the file at path with Options.OpenDB, and returns the
// handle bbolt opened it with: a damaged file may be impossible to close
// through bbolt (see closeDamaged).
func (f *File) openDB(o bolt.Options) (*bolt.DB, *os.File, error) {
	var file *os.File
	openFile := o.OpenFile
	if openFile == nil {
		openFile = os.OpenFile
	}
	o.OpenFile = func(name string, flag int, mode os.FileMode) (*os.File, error) {
		fl, err := openFile(name, flag, mode)
		file = fl
		return fl, err
	}
	db, err := f.opts.OpenDB(f.path, o)
	return db, file, err
}

// SetAside returns the path the file found damaged at Open was renamed to,
// or "" if it was not.
func (f *File) SetAside() string { return f.atOpen }

// Path returns the path of the file.
func (f *File) Path() string { return f.path }

// OnReset registers fn to run on every replacement of the file. If the file
// was replaced already (at Open, or by a transaction before fn was
// registered), fn runs now as well, so an owner that registers late still
// rebuilds.
func (f *File) OnReset(fn ResetFunc) error {
	f.mu.Lock()
	f.resets = append(f.resets, fn)
	late := f.gen > 0 && f.db != nil
	f.mu.Unlock()
	if !late {
		return nil
	}
	return f.Update(fn)
}

// View runs fn in a read-only transaction, as bolt.DB.View does.
func (f *File) View(fn func(*bolt.Tx) error) error {
	return f.run(func(db *bolt.DB) error { return db.View(fn) })
}

// Update runs fn in a read-write transaction, as bolt.DB.Update does.
func (f *File) Update(fn func(*bolt.Tx) error) error {
	return f.run(func(db *bolt.DB) error { return db.Update(fn) })
}

// run runs op on the current file. Damage (a panic or fault in op, or an
// ErrDamaged from Batch's guarded function) replaces the file before run
// returns an error wrapping ErrDamaged.
func (f *File) run(op func(*bolt.DB) error) error {
	f.mu.RLock()
	db, gen, failed := f.db, f.gen, f.failed
	if db == nil {
		f.mu.RUnlock()
		if failed == nil {
			return bolterrors.ErrDatabaseNotOpen // closed
		}
		return fmt.Errorf("%w: no replacement file: %w", ErrDamaged, failed)
	}
	err := guard(func() error { return op(db) })
	f.mu.RUnlock()
	if errors.Is(err, ErrDamaged) {
		f.mu.Lock()
		if f.gen == gen { // the first to meet it replaces it
			f.closeDamaged()
			_ = f.replaceLocked(err, f.opts.Bolt)
		}
		f.mu.Unlock()
	}
	return err
}

// guard runs fn, turning a panic, a memory fault included, into an error
// wrapping ErrDamaged.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		p := recover()
		if _, fault := p.(interface{ Addr() uintptr }); fault {
			err = fmt.Errorf("%w: memory fault reading the mapped file (truncated?): %v", ErrDamaged, p)
		} else if p != nil {
			err = fmt.Errorf("%w: bbolt panicked: %v", ErrDamaged, p)
		}
	}()
	return fn()
}

// closeDamaged lets go of the damaged file without bbolt's Close, which
// may wait for ever: a write transaction that panicked may have panicked
// again in its rollback (reading the freelist from the damaged mapping), and
// then never released bbolt's writer lock. Closing bbolt's handle releases
// the file's lock; the mapping stays until the process exits.
func (f *File) closeDamaged() {
	if f.file != nil {
		if err := f.file.Close(); err != nil {
			f.log.Debug().Err(err).Msg("closing the damaged file")
		}
	}
	f.db, f.file = nil, nil
}

// replace sets the file aside and opens an empty one; see replaceLocked.
func (f *File) replace(problem error, o bolt.Options) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.replaceLocked(problem, o); err != nil {
		return err
	}
	f.atOpen = f.away
	return nil
}

// replaceLocked renames the damaged file aside, says so in one warn line,
// opens an empty file and runs the reset functions in it. f.mu is held.
func (f *File) replaceLocked(problem error, o bolt.Options) error {
	f.gen++
	away, err := f.renameAside()
	if err == nil {
		f.away = away
		f.db, f.file, err = f.openDB(o)
	}
	if err == nil {
		// Said before the owners reset, whose rebuilds log as they start.
		f.log.Warn().Err(problem).Str("path", f.path).Str("set_aside_as", away).
			Msg("bbolt file damaged: set aside; rebuilding it from NATS (subscriptions from the KV bucket, delivery history from AUDIT)")
		err = f.db.Update(func(tx *bolt.Tx) error {
			for _, fn := range f.resets {
				if err := fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		if f.db != nil {
			_ = f.db.Close()
		}
		f.db, f.file = nil, nil
		f.failed = err
		f.log.Error().Err(err).AnErr("damage", problem).Str("path", f.path).
			Msg("bbolt file damaged, and no empty file could replace it; the replica serves no history until restarted")
		return fmt.Errorf("replace damaged %s: %w", f.path, err)
	}
	f.failed = nil
	return nil
}

// renameAside renames the file to <path>.damaged-<UTC minute>, with a
// counter when that name is taken, and returns the new name.
func (f *File) renameAside() (string, error) {
	base := f.path + ".damaged-" + f.opts.Now().UTC().Format("20060102T1504Z")
	away := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(away); errors.Is(err, os.ErrNotExist) {
			break
		}
		away = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(f.path, away); err != nil {
		return "", fmt.Errorf("set damaged file aside: %w", err)
	}
	return away, nil
}

// Close closes the file.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	err := guard(f.db.Close)
	f.db, f.file = nil, nil
	return err
}
