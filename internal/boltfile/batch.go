package boltfile

import (
	"errors"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bbolt's defaults for DB.MaxBatchSize and DB.MaxBatchDelay.
const (
	maxBatchSize  = 1000
	maxBatchDelay = 10 * time.Millisecond
)

// errTrySolo sends a call whose function failed back to run alone.
var errTrySolo = errors.New("boltfile: batch function returned an error; run it alone")

// batch is the calls gathered into one transaction. It is bbolt's
// DB.Batch over a File: bbolt's runs on a goroutine of its own, where a
// transaction that meets the damage (its rollback included, which reads the
// freelist from the mapping) would end the process; this one runs through
// Update, guarded, on a goroutine it starts itself.
type batch struct {
	calls []batchCall
	timer *time.Timer
	once  sync.Once
}

type batchCall struct {
	fn  func(*bolt.Tx) error
	err chan error
}

// Batch runs fn as part of a batch, as bolt.DB.Batch does: concurrent calls
// share one transaction, committed when maxBatchSize calls have joined or
// maxBatchDelay has passed. fn may run more than once and must be
// idempotent. A batch that meets the damage fails every call in it with
// ErrDamaged.
func (f *File) Batch(fn func(*bolt.Tx) error) error {
	errc := make(chan error, 1)
	f.bmu.Lock()
	if f.batch == nil || len(f.batch.calls) >= maxBatchSize {
		b := &batch{}
		b.timer = time.AfterFunc(maxBatchDelay, func() { f.trigger(b) })
		f.batch = b
	}
	b := f.batch
	b.calls = append(b.calls, batchCall{fn: fn, err: errc})
	if len(b.calls) >= maxBatchSize {
		go f.trigger(b) // full: commit now
	}
	f.bmu.Unlock()
	err := <-errc
	if errors.Is(err, errTrySolo) {
		err = f.Update(fn)
	}
	return err
}

// trigger runs b once.
func (f *File) trigger(b *batch) { b.once.Do(func() { f.runBatch(b) }) }

// runBatch commits b's calls in one transaction. A call whose function
// fails is taken out and told to run alone; the others are tried again.
func (f *File) runBatch(b *batch) {
	f.bmu.Lock()
	b.timer.Stop()
	if f.batch == b {
		f.batch = nil
	}
	f.bmu.Unlock()
	for len(b.calls) > 0 {
		failed := -1
		err := f.Update(func(tx *bolt.Tx) error {
			for i, c := range b.calls {
				if err := c.fn(tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed >= 0 && !errors.Is(err, ErrDamaged) {
			c := b.calls[failed]
			b.calls[failed], b.calls = b.calls[len(b.calls)-1], b.calls[:len(b.calls)-1]
			c.err <- errTrySolo
			continue
		}
		for _, c := range b.calls {
			c.err <- err
		}
		return
	}
}
