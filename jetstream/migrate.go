package jetstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// HeaderEventID carries the id of an event copied by the EVENTS migration:
// its Nats-Msg-Id, or the id the old stream's sequence gave it. The copy has
// no Nats-Msg-Id of its own, so that two events that shared one (published
// further apart than the duplicate window) are both kept.
const HeaderEventID = "Webhookd-Event-Id"

// HeaderEventTime carries when an event copied by the EVENTS migration was
// first stored (RFC 3339 with nanoseconds): the copy is stored later.
const HeaderEventTime = "Webhookd-Event-Time"

// The EVENTS migration from a work queue to Limits retention (JetStream
// cannot change a stream's retention in place). Its steps, each safe to
// repeat after a crash, under a lock:
//
//  1. the old EVENTS's subjects move to migrateOldSubject: robots' publishes
//     get a prompt "no responders" refusal, which they retry;
//  2. its messages (every one still in a work queue is unrouted, or being
//     routed) are copied in order into the holding stream migrateHold;
//  3. the old EVENTS is deleted, and the new one created listening on
//     migrateNewPrefix only, which a transform maps back to events.>;
//  4. the held messages are copied in order into the new EVENTS;
//  5. the new EVENTS takes events.> (robots publish again) and the holding
//     stream is deleted.
//
// Every copy is published with an expected last sequence, so two copiers
// cannot both append (a lost lock cannot duplicate or reorder a copy), and
// carries the source sequence in headerCopiedSeq, so a copy resumes after
// the last message copied.
const (
	migrateHold         = "EVENTS_MIGRATION"
	migrateOldSubject   = "webhookd.migrate.old"
	migrateHoldPrefix   = "webhookd.migrate.hold."
	migrateNewPrefix    = "webhookd.migrate.new."
	headerCopiedSeq     = "Webhookd-Copied-Seq"
	bucketLocks         = "webhookd_locks"
	lockEventsMigration = "events-migration"
	// lockTTL is how long a lock outlives its holder's last renewal.
	lockTTL = 30 * time.Second
)

// migrateEvents brings EVENTS to configuration sc (Limits retention),
// moving the messages of a work-queue EVENTS left by an older version over
// without losing one, and finishing a migration that was interrupted. It
// returns the configuration of the EVENTS it leaves, or nil when there is
// none yet.
//
// oldID(seq) is the id the older version gave an event without a
// Nats-Msg-Id stored at seq: a copied event keeps it in HeaderEventID.
func migrateEvents(ctx context.Context, js natsjs.JetStream, sc natsjs.StreamConfig, router natsjs.ConsumerConfig, oldID func(uint64) string) (*natsjs.StreamConfig, error) {
	for {
		cur, held, err := eventsState(ctx, js)
		if err != nil {
			return nil, err
		}
		staging := cur != nil && slices.Equal(cur.Subjects, []string{migrateNewPrefix + ">"})
		if !held && !staging && (cur == nil || cur.Retention == natsjs.LimitsPolicy) {
			return cur, nil // nothing to migrate
		}
		unlock, err := lock(ctx, js, lockEventsMigration, sc.Replicas)
		if errors.Is(err, errLockHeld) {
			select { // another replica migrates; look again shortly
			case <-time.After(time.Second):
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("jetstream: wait for the EVENTS migration of another replica: %w", context.Cause(ctx))
			}
		}
		if err != nil {
			return nil, err
		}
		err = migrateLocked(unlock.ctx, js, sc, router, oldID)
		unlock.release()
		if err != nil {
			return nil, fmt.Errorf("jetstream: migrate stream %s to Limits retention: %w", StreamEvents, err)
		}
		cur, _, err = eventsState(ctx, js)
		return cur, err
	}
}

// eventsState returns EVENTS's configuration (nil: none) and whether the
// holding stream of a migration exists.
func eventsState(ctx context.Context, js natsjs.JetStream) (*natsjs.StreamConfig, bool, error) {
	var cur *natsjs.StreamConfig
	str, err := js.Stream(ctx, StreamEvents)
	switch {
	case errors.Is(err, natsjs.ErrStreamNotFound):
	case err != nil:
		return nil, false, fmt.Errorf("jetstream: stream %s: %w", StreamEvents, err)
	default:
		cfg := str.CachedInfo().Config
		cur = &cfg
	}
	_, err = js.Stream(ctx, migrateHold)
	switch {
	case errors.Is(err, natsjs.ErrStreamNotFound):
		return cur, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("jetstream: stream %s: %w", migrateHold, err)
	}
	return cur, true, nil
}

// migrateLocked runs the steps of the migration still to do; the caller
// holds the lock.
func migrateLocked(ctx context.Context, js natsjs.JetStream, sc natsjs.StreamConfig, router natsjs.ConsumerConfig, oldID func(uint64) string) error {
	if oldID == nil {
		return errors.New("no Provisioning.EventID to name the events copied")
	}
	old, err := js.Stream(ctx, StreamEvents)
	if err != nil && !errors.Is(err, natsjs.ErrStreamNotFound) {
		return fmt.Errorf("stream %s: %w", StreamEvents, err)
	}
	if err == nil && old.CachedInfo().Config.Retention != natsjs.LimitsPolicy {
		oldInfo := old.CachedInfo()
		if !slices.Equal(oldInfo.Config.Subjects, []string{migrateOldSubject}) {
			cfg := oldInfo.Config // same retention: the update fails if EVENTS changed meanwhile
			cfg.Subjects = []string{migrateOldSubject}
			if _, err := js.UpdateStream(ctx, cfg); err != nil {
				return fmt.Errorf("stop the old %s taking events: %w", StreamEvents, err)
			}
		}
		hold, err := js.CreateOrUpdateStream(ctx, natsjs.StreamConfig{
			Name: migrateHold, Description: "events being moved from the old EVENTS to the new; removed when done",
			Subjects: []string{migrateHoldPrefix + ">"}, Retention: natsjs.LimitsPolicy,
			Storage: natsjs.FileStorage, Replicas: sc.Replicas, Discard: natsjs.DiscardNew,
		})
		if err != nil {
			return fmt.Errorf("create stream %s: %w", migrateHold, err)
		}
		if err := copyStream(ctx, js, old, hold, func(m *natsjs.RawStreamMsg, out *nats.Msg) {
			out.Subject = migrateHoldPrefix + m.Subject
			id := m.Header.Get(nats.MsgIdHdr)
			if id == "" {
				id = oldID(m.Sequence)
			}
			out.Header.Del(nats.MsgIdHdr)
			out.Header.Set(HeaderEventID, id)
			out.Header.Set(HeaderEventTime, m.Time.UTC().Format(time.RFC3339Nano))
		}); err != nil {
			return err
		}
		if info, err := old.Info(ctx); err != nil || !info.Created.Equal(oldInfo.Created) || info.Config.Retention == natsjs.LimitsPolicy {
			return fmt.Errorf("old %s changed while it was copied (%v); starting over", StreamEvents, err)
		}
		if err := js.DeleteStream(ctx, StreamEvents); err != nil && !errors.Is(err, natsjs.ErrStreamNotFound) {
			return fmt.Errorf("delete the old %s: %w", StreamEvents, err)
		}
	}
	hold, err := js.Stream(ctx, migrateHold)
	if errors.Is(err, natsjs.ErrStreamNotFound) {
		// Finished by another replica, or the holding stream was deleted
		// after the new EVENTS took events.>: let it take them in any case.
		if _, err := js.UpdateStream(ctx, sc); err != nil && !errors.Is(err, natsjs.ErrStreamNotFound) {
			return fmt.Errorf("let the new %s take events: %w", StreamEvents, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", migrateHold, err)
	}
	cur, err := js.Stream(ctx, StreamEvents)
	if errors.Is(err, natsjs.ErrStreamNotFound) {
		staging := sc
		// No limits while copying (copies carry two more headers): a
		// Discard New stream keeps what it holds when its limits come back.
		staging.MaxBytes, staging.MaxMsgSize = -1, -1
		staging.Subjects = []string{migrateNewPrefix + ">"}
		staging.SubjectTransform = &natsjs.SubjectTransformConfig{Source: migrateNewPrefix + ">", Destination: EventsPrefix + ">"}
		cur, err = js.CreateStream(ctx, staging)
	}
	if err != nil {
		return fmt.Errorf("create the new %s: %w", StreamEvents, err)
	}
	if slices.Equal(cur.CachedInfo().Config.Subjects, []string{migrateNewPrefix + ">"}) {
		// Not yet taking events: the copy is unfinished.
		if err := copyStream(ctx, js, hold, cur, func(m *natsjs.RawStreamMsg, out *nats.Msg) {
			// The transform maps it back to events.<type>.
			out.Subject = migrateNewPrefix + strings.TrimPrefix(strings.TrimPrefix(m.Subject, migrateHoldPrefix), EventsPrefix)
		}); err != nil {
			return err
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, StreamEvents, router); err != nil {
			return fmt.Errorf("create consumer %s/%s: %w", StreamEvents, router.Durable, err)
		}
		if _, err := js.UpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("let the new %s take events: %w", StreamEvents, err)
		}
	}
	if err := js.DeleteStream(ctx, migrateHold); err != nil && !errors.Is(err, natsjs.ErrStreamNotFound) {
		return fmt.Errorf("delete stream %s: %w", migrateHold, err)
	}
	return nil
}

// copyStream appends every message of from that to does not hold yet to
// to, in order, each rewritten by edit (which sets the subject). A copy
// carries its source sequence in headerCopiedSeq; the copy resumes after
// the last one to holds. Each publish expects to's last sequence, so a
// second copier fails instead of appending twice.
func copyStream(ctx context.Context, js natsjs.JetStream, from, to natsjs.Stream, edit func(*natsjs.RawStreamMsg, *nats.Msg)) error {
	src, dst := from.CachedInfo().Config.Name, to.CachedInfo().Config.Name
	info, err := to.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", dst, err)
	}
	last, next := info.State.LastSeq, uint64(1)
	m, err := to.GetLastMsgForSubject(ctx, ">")
	switch {
	case errors.Is(err, natsjs.ErrMsgNotFound):
	case err != nil:
		return fmt.Errorf("read the last copy in %s: %w", dst, err)
	default:
		copied, err := strconv.ParseUint(m.Header.Get(headerCopiedSeq), 10, 64)
		if err != nil {
			return fmt.Errorf("the last message of %s (%d) is not a copy: %q", dst, m.Sequence, m.Header.Get(headerCopiedSeq))
		}
		next = copied + 1
	}
	for {
		m, err := from.GetMsg(ctx, next, natsjs.WithGetMsgSubject(">"))
		if errors.Is(err, natsjs.ErrMsgNotFound) {
			return nil // copied to the end
		}
		if err != nil {
			return fmt.Errorf("read %s message %d: %w", src, next, err)
		}
		out := &nats.Msg{Header: nats.Header{}, Data: m.Data}
		for k, v := range m.Header {
			out.Header[k] = slices.Clone(v)
		}
		out.Header.Set(headerCopiedSeq, strconv.FormatUint(m.Sequence, 10))
		edit(m, out)
		ack, err := js.PublishMsg(ctx, out, natsjs.WithExpectStream(dst), natsjs.WithExpectLastSequence(last))
		if err != nil {
			return fmt.Errorf("copy %s message %d into %s: %w", src, m.Sequence, dst, err)
		}
		last, next = ack.Sequence, m.Sequence+1
	}
}

// errLockHeld says another holder has the lock.
var errLockHeld = errors.New("lock held by another replica")

// heldLock is a lock taken by lock: ctx is cancelled when the lock is lost.
type heldLock struct {
	ctx     context.Context
	release func()
}

// lock takes lock name in the bucketLocks bucket (created when missing) by
// creating its key, which fails while another holder has it. The holder
// renews it every lockTTL/3; a holder that dies leaves it to expire after
// lockTTL. It returns errLockHeld when the key exists.
func lock(ctx context.Context, js natsjs.JetStream, name string, replicas int) (heldLock, error) {
	var kv natsjs.KeyValue
	err := answered(ctx, func(ctx context.Context) (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, natsjs.KeyValueConfig{
			Bucket: bucketLocks, Description: "short-lived locks of webhookd replicas",
			History: 1, TTL: lockTTL, Storage: natsjs.FileStorage, Replicas: max(replicas, 1),
		})
		return err
	})
	if err != nil {
		return heldLock{}, fmt.Errorf("jetstream: lock bucket %s%s: %w", bucketLocks, replicasHint(replicas), err)
	}
	holder := uuid.NewString()
	var rev uint64
	err = answered(ctx, func(ctx context.Context) (err error) {
		rev, err = kv.Create(ctx, name, []byte(holder))
		return err
	})
	// Asked again after a lost reply, a lock taken by the first request is
	// held (by this holder, which lets it expire) until lockTTL.
	if errors.Is(err, natsjs.ErrKeyExists) {
		return heldLock{}, errLockHeld
	}
	if err != nil {
		return heldLock{}, fmt.Errorf("jetstream: take lock %s: %w", name, err)
	}
	lctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			r, err := kv.Update(lctx, name, []byte(holder), rev)
			if err != nil {
				cancel(fmt.Errorf("lock %s lost: %w", name, err))
				return
			}
			rev = r
		}
	}()
	return heldLock{ctx: lctx, release: func() {
		cancel(errors.New("lock released"))
		<-done
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer dcancel()
		_ = kv.Delete(dctx, name, natsjs.LastRevision(rev)) // else it expires after lockTTL
	}}, nil
}
