package subscriptions

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"

	"github.com/google/uuid"

	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/internal/boltfile"
)

var (
	bucketSubs = []byte("subs")
	bucketMeta = []byte("meta")
	keyRev     = []byte("subs_kv_revision")
)

// DB is the bbolt file the mirror is kept in: a *bolt.DB, or a
// *boltfile.File, which replaces a damaged file with an empty one and then
// calls Reset.
type DB interface {
	View(fn func(*bolt.Tx) error) error
	Update(fn func(*bolt.Tx) error) error
}

// Store is the replicated subscription store of one replica: writes go to the
// KV bucket, reads come from the local mirror (bbolt + memory). All methods
// are safe for concurrent use.
type Store struct {
	kv    natsjs.KeyValue
	db    DB
	log   zerolog.Logger
	now   func() time.Time
	codec codec

	mu      sync.RWMutex
	subs    map[string]Subscription
	matches map[string][]Subscription // event type → matching subs, cleared on change
	rev     uint64                    // last KV revision applied
	applied chan struct{}             // closed and replaced on every apply
	ready   chan struct{}             // closed when caught up; replaced by Reset
	reset   chan struct{}             // closed and replaced by Reset: Run rebuilds
}

// Option configures a Store at Open.
type Option func(*Store) error

// WithSecretKey encrypts the subscription secrets the store writes, to the
// bucket and to the mirror, with key. Records with plaintext secrets are
// still read, and encrypted on their next write.
func WithSecretKey(key *Key) Option {
	return func(s *Store) error {
		if key == nil {
			return errors.New("subscriptions: WithSecretKey: nil key")
		}
		s.codec.key = key
		return nil
	}
}

// Open loads the mirror from db (creating its buckets) and returns a Store
// that writes to kv. Call Run to keep the mirror in sync. With a secret key,
// mirrored records with plaintext secrets are encrypted in place. A mirrored
// secret that cannot be decrypted (no key, another key) fails Open with an
// error wrapping ErrSecretKey.
func Open(kv natsjs.KeyValue, db DB, log zerolog.Logger, opts ...Option) (*Store, error) {
	s := &Store{
		kv: kv, db: db, log: log.With().Str("component", "subscriptions").Logger(), now: time.Now,
		subs: map[string]Subscription{}, matches: map[string][]Subscription{},
		applied: make(chan struct{}), ready: make(chan struct{}), reset: make(chan struct{}),
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	err := db.Update(func(tx *bolt.Tx) error {
		b, meta, err := createBuckets(tx)
		if err != nil {
			return err
		}
		if v := meta.Get(keyRev); len(v) == 8 {
			s.rev = binary.BigEndian.Uint64(v)
		}
		var plain []Subscription
		err = b.ForEach(func(k, v []byte) error {
			sub, isPlain, err := s.codec.decode(v)
			if err != nil {
				return fmt.Errorf("record %s: %w", k, err)
			}
			if isPlain {
				plain = append(plain, sub)
			}
			s.subs[sub.ID] = sub
			return nil
		})
		if err != nil {
			return err
		}
		for _, sub := range plain { // encrypt the mirror's plaintext secrets now
			v, err := s.codec.encode(sub)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(sub.ID), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("subscriptions: open mirror: %w", err)
	}
	return s, nil
}

func createBuckets(tx *bolt.Tx) (subs, meta *bolt.Bucket, err error) {
	if subs, err = tx.CreateBucketIfNotExists(bucketSubs); err != nil {
		return nil, nil, err
	}
	meta, err = tx.CreateBucketIfNotExists(bucketMeta)
	return subs, meta, err
}

// Ready is closed once the mirror has caught up with the bucket. After a
// Reset, Ready returns a new channel, closed when the rebuilt mirror has
// caught up.
func (s *Store) Ready() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ready
}

// Reset is a boltfile.ResetFunc: the mirror's file was found damaged and
// replaced by an empty one, in which tx runs. It creates the mirror's
// buckets and has Run rebuild the mirror from the bucket; Ready is not
// ready until it has caught up. Meanwhile the subscriptions in memory go on
// serving Get and Match.
func (s *Store) Reset(tx *bolt.Tx) error {
	if _, _, err := createBuckets(tx); err != nil {
		return fmt.Errorf("subscriptions: reset mirror: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev = 0
	select {
	case <-s.ready:
		s.ready = make(chan struct{})
	default:
	}
	close(s.reset)
	s.reset = make(chan struct{})
	return nil
}

// markReady closes Ready's channel, once per catch-up.
func (s *Store) markReady(began time.Time, applied int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.ready:
		return
	default:
	}
	s.log.Info().Uint64("revision", s.rev).Int("entries_applied", applied).
		Dur("took", time.Since(began)).Msg("subscription mirror caught up")
	close(s.ready)
}

// Revision returns the last bucket revision the mirror applied.
func (s *Store) Revision() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rev
}

// Run mirrors the bucket until ctx is done. It resumes from the revision the
// mirror last applied, or rebuilds the mirror when the bucket is new to it
// (for example after switching NATS servers) or its file was replaced
// (Reset). It returns nil on a clean stop.
func (s *Store) Run(ctx context.Context) error {
	for {
		s.mu.RLock()
		reset := s.reset
		s.mu.RUnlock()
		err := s.mirror(ctx, reset)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, boltfile.ErrDamaged) {
			// The file was replaced under a write: Reset has run, or no
			// file could replace it, which a second will not change much.
			select {
			case <-reset:
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		if !errors.Is(err, errReset) {
			return err
		}
	}
}

// errReset ends a mirror pass when the file was replaced.
var errReset = errors.New("subscriptions: mirror file replaced")

// mirror runs Run's watch until ctx is done (nil), reset is closed
// (errReset) or it fails.
func (s *Store) mirror(ctx context.Context, reset <-chan struct{}) error {
	start := s.Revision()
	if start > 0 {
		last, err := s.bucketRevision(ctx)
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		if err != nil {
			return err
		}
		if start > last {
			s.log.Warn().Uint64("mirror_revision", start).Uint64("bucket_revision", last).
				Msg("subscription bucket is behind the mirror (new NATS?); rebuilding the mirror")
			start = 0
			s.mu.Lock()
			s.rev = 0
			s.mu.Unlock()
		}
	}
	var opts []natsjs.WatchOpt
	if start > 0 {
		opts = append(opts, natsjs.ResumeFromRevision(start+1))
	}
	// Logged so an operator (and a test) can tell a resume from a reload.
	s.log.Info().Uint64("from_revision", start).Bool("rebuild", start == 0).Msg("subscription mirror starting")
	began, applied := time.Now(), 0
	w, err := s.kv.WatchAll(ctx, opts...)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("subscriptions: watch: %w", err)
	}
	defer func() { _ = w.Stop() }()

	rebuild := start == 0
	seen := map[string]bool{}
	for {
		var batch []natsjs.KeyValueEntry
		caughtUp := false
		select {
		case <-ctx.Done():
			return nil
		case <-reset:
			return errReset
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("subscriptions: watcher closed")
			}
			if e == nil {
				caughtUp = true
			} else {
				batch = append(batch, e)
			}
		}
		// Group a burst of changes into one transaction.
	drain:
		for !caughtUp && len(batch) < 256 {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					break drain // reported by the next receive
				}
				if e == nil {
					caughtUp = true
				} else {
					batch = append(batch, e)
				}
			default:
				break drain
			}
		}
		if rebuild {
			for _, e := range batch {
				seen[e.Key()] = true
			}
		}
		if len(batch) > 0 {
			if err := s.apply(batch); err != nil {
				return err
			}
			applied += len(batch)
		}
		if caughtUp { // the initial values are applied
			if rebuild {
				if err := s.dropExcept(seen); err != nil {
					return err
				}
				rebuild, seen = false, nil
			}
			s.markReady(began, applied)
		}
	}
}

// apply stores changes and the revision in one bbolt transaction, then
// updates memory, so the resume point never runs ahead of the data.
func (s *Store) apply(entries []natsjs.KeyValueEntry) error {
	type change struct {
		id  string
		sub *Subscription
	}
	changes := make([]change, 0, len(entries))
	var rev uint64
	for _, e := range entries {
		rev = max(rev, e.Revision())
		switch e.Operation() {
		case natsjs.KeyValuePut:
			sub, _, err := s.codec.decode(e.Value())
			if errors.Is(err, ErrSecretKey) {
				// A replica that cannot read a secret cannot sign for it:
				// stop loudly rather than serve without the subscription.
				return err
			}
			if err != nil {
				s.log.Error().Err(err).Str("subscription_id", e.Key()).Msg("skipping undecodable subscription record")
				continue
			}
			changes = append(changes, change{e.Key(), &sub})
		default: // delete, purge
			changes = append(changes, change{e.Key(), nil})
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSubs)
		for _, c := range changes {
			if c.sub == nil {
				if err := b.Delete([]byte(c.id)); err != nil {
					return err
				}
				continue
			}
			v, err := s.codec.encode(*c.sub)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(c.id), v); err != nil {
				return err
			}
		}
		var rb [8]byte
		binary.BigEndian.PutUint64(rb[:], rev)
		return tx.Bucket(bucketMeta).Put(keyRev, rb[:])
	})
	if err != nil {
		return fmt.Errorf("subscriptions: apply to mirror: %w", err)
	}
	s.mu.Lock()
	for _, c := range changes {
		if c.sub == nil {
			delete(s.subs, c.id)
		} else {
			s.subs[c.id] = *c.sub
		}
	}
	s.rev = max(s.rev, rev)
	clear(s.matches)
	close(s.applied)
	s.applied = make(chan struct{})
	s.mu.Unlock()
	return nil
}

// dropExcept removes mirrored subscriptions absent from a rebuilt bucket.
func (s *Store) dropExcept(keep map[string]bool) error {
	s.mu.RLock()
	var stale []string
	for id := range s.subs {
		if !keep[id] {
			stale = append(stale, id)
		}
	}
	s.mu.RUnlock()
	if len(stale) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, id := range stale {
			if err := tx.Bucket(bucketSubs).Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("subscriptions: drop stale: %w", err)
	}
	s.mu.Lock()
	for _, id := range stale {
		delete(s.subs, id)
	}
	clear(s.matches)
	s.mu.Unlock()
	return nil
}

// waitRevision blocks until the mirror has applied rev.
func (s *Store) waitRevision(ctx context.Context, rev uint64) error {
	for {
		s.mu.RLock()
		done, ch := s.rev >= rev, s.applied
		s.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("subscriptions: waiting for the mirror: %w", ctx.Err())
		}
	}
}

// Get returns the subscription with id from the mirror.
func (s *Store) Get(id string) (Subscription, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sub, ok := s.subs[id]
	return sub, ok
}

// Fetch reads the subscription from the bucket itself, for when the mirror
// may lag (a subscription created on another replica a moment ago). It
// returns ErrNotFound for an unknown or deleted id.
func (s *Store) Fetch(ctx context.Context, id string) (Subscription, error) {
	sub, _, err := s.fetch(ctx, id)
	return sub, err
}

// fetch reads the record and its revision from the bucket. An id that is not
// a UUID cannot name a subscription (and is no valid key): ErrNotFound.
func (s *Store) fetch(ctx context.Context, id string) (Subscription, uint64, error) {
	if !ValidID(id) {
		return Subscription{}, 0, ErrNotFound
	}
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, natsjs.ErrKeyNotFound) {
		return Subscription{}, 0, ErrNotFound
	}
	if err != nil {
		return Subscription{}, 0, fmt.Errorf("subscriptions: get %s: %w", id, err)
	}
	sub, _, err := s.codec.decode(e.Value())
	if err != nil {
		return Subscription{}, 0, fmt.Errorf("subscriptions: get %s: %w", id, err)
	}
	return sub, e.Revision(), nil
}

// List returns every subscription, oldest first.
func (s *Store) List() []Subscription {
	s.mu.RLock()
	out := make([]Subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		out = append(out, sub)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Subscription) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Match returns the subscriptions, active or paused, whose events match
// eventType. It does no I/O; results are cached per event type until the next
// change. The returned slice must not be modified.
func (s *Store) Match(eventType string) []Subscription {
	s.mu.RLock()
	m, ok := s.matches[eventType]
	s.mu.RUnlock()
	if ok {
		return m
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.matches[eventType]; ok {
		return m
	}
	m = []Subscription{}
	for _, sub := range s.subs {
		if sub.Matches(eventType) {
			m = append(m, sub)
		}
	}
	slices.SortFunc(m, func(a, b Subscription) int { return cmp.Compare(a.ID, b.ID) })
	if len(s.matches) < 10_000 { // bound the cache against many distinct types
		s.matches[eventType] = m
	}
	return m
}

// Create validates sub, gives it an id, a secret and timestamps, stores it
// and returns it once this replica's mirror has it. The subscription is
// active. It returns an error wrapping ErrInvalid for bad fields.
func (s *Store) Create(ctx context.Context, sub Subscription) (Subscription, error) {
	if err := sub.Validate(); err != nil {
		return Subscription{}, err
	}
	secret, err := signature.NewSecret()
	if err != nil {
		return Subscription{}, err
	}
	now := s.now().UTC()
	sub.ID, sub.Secret, sub.PreviousSecrets = uuid.NewString(), secret, nil
	sub.Active, sub.CreatedAt, sub.UpdatedAt = true, now, now
	sub.DisabledReason, sub.DisabledAt, sub.FailingSince = "", time.Time{}, time.Time{}
	v, err := s.codec.encode(sub)
	if err != nil {
		return Subscription{}, err
	}
	rev, err := s.kv.Create(ctx, sub.ID, v)
	if err != nil {
		return Subscription{}, fmt.Errorf("subscriptions: create %s: %w", sub.ID, err)
	}
	return sub, s.waitRevision(ctx, rev)
}

// Update applies fn to the stored subscription and writes it back with
// compare-and-set. It returns ErrNotFound for an unknown id, ErrConflict when
// the record changed in between, and an error wrapping ErrInvalid when fn
// leaves it invalid. fn may change any field but ID and CreatedAt.
func (s *Store) Update(ctx context.Context, id string, fn func(*Subscription) error) (Subscription, error) {
	sub, orig, err := s.fetch(ctx, id)
	if err != nil {
		return Subscription{}, err
	}
	created := sub.CreatedAt
	if err := fn(&sub); errors.Is(err, errUnchanged) {
		return sub, nil // fn left it as stored: nothing to write
	} else if err != nil {
		return Subscription{}, err
	}
	if err := sub.Validate(); err != nil {
		return Subscription{}, err
	}
	sub.ID, sub.CreatedAt = id, created
	sub.UpdatedAt = s.now().UTC()
	v, err := s.codec.encode(sub)
	if err != nil {
		return Subscription{}, err
	}
	rev, err := s.kv.Update(ctx, id, v, orig)
	if errors.Is(err, natsjs.ErrKeyExists) {
		return Subscription{}, ErrConflict
	}
	var apiErr *natsjs.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequence {
		return Subscription{}, ErrConflict
	}
	if err != nil {
		return Subscription{}, fmt.Errorf("subscriptions: update %s: %w", id, err)
	}
	return sub, s.waitRevision(ctx, rev)
}

// Delete removes the subscription. It returns ErrNotFound for an unknown id.
func (s *Store) Delete(ctx context.Context, id string) error { return s.DeleteIf(ctx, id, nil) }

// DeleteIf is Delete when check (if not nil) accepts the stored
// subscription: its error is returned as is, and the delete is a
// compare-and-set on the revision check saw.
func (s *Store) DeleteIf(ctx context.Context, id string, check func(Subscription) error) error {
	sub, rev, err := s.fetch(ctx, id)
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(sub); err != nil {
			return err
		}
	}
	if err := s.kv.Delete(ctx, id, natsjs.LastRevision(rev)); err != nil {
		return fmt.Errorf("subscriptions: delete %s: %w", id, err)
	}
	// The delete marker's revision is not returned; the bucket's last
	// revision now is at least that, so waiting for it gives read-your-writes.
	last, err := s.bucketRevision(ctx)
	if err != nil {
		return err
	}
	return s.waitRevision(ctx, last)
}

// bucketRevision returns the bucket's latest revision.
func (s *Store) bucketRevision(ctx context.Context) (uint64, error) {
	st, err := s.kv.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("subscriptions: bucket status: %w", err)
	}
	bs, ok := st.(*natsjs.KeyValueBucketStatus)
	if !ok {
		return 0, fmt.Errorf("subscriptions: unexpected bucket status type %T", st)
	}
	return bs.StreamInfo().State.LastSeq, nil
}
