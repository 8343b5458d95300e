package subscriptions

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	bolt "go.etcd.io/bbolt"
)

var (
	// bucketReseal is the journal of a reseal in progress: every key's
	// record (sealed) or tombstone, kept until the purged bucket has them
	// back, so that a crash in between loses nothing.
	bucketReseal = []byte("reseal")
	// keyResealUpTo is the journal's purge point: the bucket revision it
	// was taken at.
	keyResealUpTo = []byte("reseal_up_to")
	// keyResealedWith is the id of the key this replica last resealed the
	// bucket with.
	keyResealedWith = []byte("resealed_with_key")
)

// journalEntry is one key of the journal: its sealed record, or a
// tombstone (Deleted) for a deleted key.
type journalEntry struct {
	Record  json.RawMessage `json:"record,omitempty"`
	Deleted bool            `json:"deleted,omitempty"`
}

// ResealReport says what Reseal did.
type ResealReport struct {
	// Done is false when the bucket had been resealed with this key before
	// (by this replica): nothing was done.
	Done bool
	// Records and Tombstones are the keys written back.
	Records, Tombstones int
	// Purged is how many stored messages the purge removed.
	Purged uint64
	// Clean is false when another replica wrote to the bucket between the
	// snapshot and the purge, so the purge may have left old bytes in the
	// stream's last file block; the next start tries again.
	Clean bool
}

// Reseal rewrites the subscription bucket so that no plaintext secret is
// left in it, not even in the stream's files: records written before the
// key, their superseded revisions and the records of deleted
// subscriptions. A JetStream file store only marks a superseded or deleted
// message as removed; its bytes stay in the block file until the block is
// rewritten, which never happens to the last block of a small stream. So
// Reseal takes every key's latest record (sealing its secrets with the
// store's key when they are in plaintext; other records are kept byte for
// byte) or tombstone, journals them in bbolt, purges the bucket's stream up to
// that point (which deletes its files when nothing was written since),
// and writes them back; a write by another replica in between wins over
// the journal's copy (each put expects the key to be absent). A crash
// between the purge and the end is finished by the next Reseal, from the
// journal. Tombstones are written back so that a replica whose mirror
// missed a delete still learns of it.
//
// It runs once per key: a replica remembers the key it resealed with, and
// a later call with the same key does nothing. Call it after Open and
// before Run, with the JetStream handle the store's bucket lives in. It
// returns ErrSecretKey (wrapped) when a record cannot be decrypted, before
// changing anything, and an error when the store has no key.
func (s *Store) Reseal(ctx context.Context, js natsjs.JetStream) (ResealReport, error) {
	if s.codec.key == nil {
		return ResealReport{}, errors.New("subscriptions: reseal: no secret key")
	}
	var upTo uint64
	var journal map[string]journalEntry
	var doneWith string
	err := s.db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		doneWith = string(meta.Get(keyResealedWith))
		if v := meta.Get(keyResealUpTo); len(v) == 8 {
			upTo = binary.BigEndian.Uint64(v)
		}
		b := tx.Bucket(bucketReseal)
		if b == nil {
			return nil
		}
		journal = map[string]journalEntry{}
		return b.ForEach(func(k, v []byte) error {
			var e journalEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("journal %s: %w", k, err)
			}
			journal[string(k)] = e
			return nil
		})
	})
	if err != nil {
		return ResealReport{}, fmt.Errorf("subscriptions: reseal: read journal: %w", err)
	}
	if journal == nil && doneWith == s.codec.key.ID() {
		return ResealReport{}, nil
	}
	str, err := js.Stream(ctx, "KV_"+s.kv.Bucket())
	if err != nil {
		return ResealReport{}, fmt.Errorf("subscriptions: reseal: %w", err)
	}
	if journal == nil { // a fresh reseal: take the snapshot
		if journal, upTo, err = s.snapshot(ctx); err != nil {
			return ResealReport{}, err
		}
		if len(journal) == 0 { // no message left: nothing to purge but what went before
			upTo = str.CachedInfo().State.LastSeq
		}
		if err := s.writeJournal(journal, upTo); err != nil {
			return ResealReport{}, err
		}
	}
	rep := ResealReport{Done: true}
	before, err := str.Info(ctx)
	if err != nil {
		return ResealReport{}, fmt.Errorf("subscriptions: reseal: %w", err)
	}
	// Up to and including upTo: when nothing came after, this is a purge
	// of the whole stream, which removes its block files.
	if err := str.Purge(ctx, natsjs.WithPurgeSequence(upTo+1)); err != nil {
		return ResealReport{}, fmt.Errorf("subscriptions: reseal: purge: %w", err)
	}
	rep.Clean = before.State.LastSeq <= upTo
	if after, err := str.Info(ctx); err == nil {
		rep.Purged = before.State.Msgs - min(before.State.Msgs, after.State.Msgs)
	}
	for key, e := range journal {
		wrote, err := s.restore(ctx, js, key, e)
		if err != nil {
			return rep, err // the journal stays: the next start finishes
		}
		switch {
		case !wrote:
		case e.Deleted:
			rep.Tombstones++
		default:
			rep.Records++
		}
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketReseal); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Delete(keyResealUpTo); err != nil {
			return err
		}
		if !rep.Clean {
			return nil // try again at the next start
		}
		return meta.Put(keyResealedWith, []byte(s.codec.key.ID()))
	})
	if err != nil {
		return rep, fmt.Errorf("subscriptions: reseal: close journal: %w", err)
	}
	return rep, nil
}

// snapshot returns every key's latest record, sealed with the store's key,
// or its tombstone, and the bucket revision they were read at.
func (s *Store) snapshot(ctx context.Context) (map[string]journalEntry, uint64, error) {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("subscriptions: reseal: watch: %w", err)
	}
	defer func() { _ = w.Stop() }()
	out := map[string]journalEntry{}
	var upTo uint64
	for {
		var e natsjs.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("subscriptions: reseal: %w", ctx.Err())
		case got, ok := <-w.Updates():
			if !ok {
				return nil, 0, errors.New("subscriptions: reseal: watcher closed")
			}
			e = got
		}
		if e == nil { // every key's latest entry has come
			return out, upTo, nil
		}
		upTo = max(upTo, e.Revision())
		if e.Operation() != natsjs.KeyValuePut {
			out[e.Key()] = journalEntry{Deleted: true}
			continue
		}
		sub, plain, err := s.codec.decode(e.Value())
		if errors.Is(err, ErrSecretKey) {
			return nil, 0, fmt.Errorf("subscriptions: reseal: %w", err)
		}
		if err != nil || !plain { // sealed already, or not ours to judge: kept as it is
			out[e.Key()] = journalEntry{Record: e.Value()}
			continue
		}
		v, err := s.codec.encode(sub)
		if err != nil {
			return nil, 0, err
		}
		out[e.Key()] = journalEntry{Record: v}
	}
}

// writeJournal stores the journal and its purge point in one transaction.
func (s *Store) writeJournal(journal map[string]journalEntry, upTo uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketReseal)
		if err != nil {
			return err
		}
		for key, e := range journal {
			v, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(key), v); err != nil {
				return err
			}
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], upTo)
		return tx.Bucket(bucketMeta).Put(keyResealUpTo, v[:])
	})
	if err != nil {
		return fmt.Errorf("subscriptions: reseal: write journal: %w", err)
	}
	return nil
}

// restore writes one journal entry back unless the key has a message
// already (written after the snapshot, or restored before a crash). It
// reports whether it wrote.
func (s *Store) restore(ctx context.Context, js natsjs.JetStream, key string, e journalEntry) (bool, error) {
	msg := nats.NewMsg("$KV." + s.kv.Bucket() + "." + key)
	if e.Deleted {
		msg.Header.Set("KV-Operation", "DEL")
	} else {
		msg.Data = e.Record
	}
	_, err := js.PublishMsg(ctx, msg, natsjs.WithExpectLastSequencePerSubject(0))
	var apiErr *natsjs.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequence {
		return false, nil // a newer write is there
	}
	if err != nil {
		return false, fmt.Errorf("subscriptions: reseal: write back %s: %w", key, err)
	}
	return true, nil
}
