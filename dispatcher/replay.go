package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
)

// ErrReplayRunning is wrapped by StartReplay's error when another replay of
// the same subscription, over another time range, is running on this
// replica. It wraps ErrConflict.
var ErrReplayRunning = fmt.Errorf("%w: a replay of this subscription is running", ErrConflict)

// ErrQueueStopped is returned by StartReplay when the Queue is not running
// (the replica is shutting down).
var ErrQueueStopped = errors.New("dispatcher: queue stopped")

// ReplayStatus is a replay's progress as the replica running it sees it.
type ReplayStatus struct {
	ID             string
	SubscriptionID string
	Since, Until   time.Time
	Rate           float64 // deliveries per second
	// Planned is how many failed deliveries the replay found when it began;
	// deliveries that fail while it runs and fall in its range are sent too.
	Planned int
	// Sent were requeued; Skipped could not be sent again (no longer failed,
	// kept job expired, subscription deleted); Failed were not requeued
	// because of an error (NATS unavailable).
	Sent, Skipped, Failed int
	StartedAt, FinishedAt time.Time
	Done                  bool
	// Err says why the replay stopped before its end ("" otherwise).
	Err string
}

// replay is a running or finished replay; mu guards st.
type replay struct {
	mu    sync.Mutex
	st    ReplayStatus
	query history.Query
}

func (r *replay) status() ReplayStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

func (r *replay) update(fn func(*ReplayStatus)) {
	r.mu.Lock()
	fn(&r.st)
	r.mu.Unlock()
}

const (
	// replayParallel bounds the requeues in flight in a replay: each is
	// three round trips to NATS and a batched bbolt write (tens of ms on a
	// busy machine), so one at a time would fall far short of the top rate.
	// Above 250/s a walk keeps about a fifteenth of its rate in flight.
	replayParallel = 64
	// replayMaxFailuresInRow ends a replay whose requeues keep failing (NATS
	// unavailable) instead of failing every delivery that is left.
	replayMaxFailuresInRow = 20
	// replaysKept is how many finished replays stay queryable.
	replaysKept = 100
)

// StartReplay starts requeuing, in the background at perSecond, the failed
// deliveries query selects (its Status is set to failed), oldest first,
// and returns the replay's status at its start. A replay runs under Run's
// context, not the caller's: it goes on when the request that started it
// ends, and stops at shutdown (a later replay sends what is left, as only
// deliveries still failed are selected).
//
// One replay per subscription runs at a time on a replica: asking again for
// the same subscription and range joins the running replay (joined is
// true); another range answers ErrReplayRunning. Requeues have fixed
// message ids, so replays on two replicas cannot queue a delivery twice.
func (q *Queue) StartReplay(ctx context.Context, query history.Query, perSecond float64) (st ReplayStatus, joined bool, err error) {
	if perSecond <= 0 || math.IsInf(perSecond, 0) || math.IsNaN(perSecond) {
		return ReplayStatus{}, false, fmt.Errorf("dispatcher: replay rate %g: want a positive number", perSecond)
	}
	select {
	case <-q.stopped:
		return ReplayStatus{}, false, ErrQueueStopped
	default:
	}
	query.Status, query.Cursor = delivery.StatusFailed, ""
	q.mu.Lock()
	running, ok := q.runningFor(query.SubscriptionID)
	q.mu.Unlock()
	if ok {
		return joinOrRefuse(running, query)
	}

	planned := 0
	if err := q.Each(query, func(history.Delivery) error { planned++; return nil }); err != nil {
		return ReplayStatus{}, false, fmt.Errorf("plan replay: %w", err)
	}
	r := &replay{query: query, st: ReplayStatus{
		ID: uuid.NewString(), SubscriptionID: query.SubscriptionID, Since: query.Since, Until: query.Until,
		Rate: perSecond, Planned: planned, StartedAt: q.now().UTC(),
	}}
	q.mu.Lock()
	// Checked again: another request may have started one while this one
	// was counting.
	if running, ok := q.runningFor(query.SubscriptionID); ok {
		q.mu.Unlock()
		return joinOrRefuse(running, query)
	}
	q.replays = append(q.replays, r)
	q.pruneReplays()
	q.mu.Unlock()

	select {
	case q.starts <- r:
	case <-q.stopped:
		r.update(func(s *ReplayStatus) {
			s.Done, s.Err, s.FinishedAt = true, "not started: webhookd is stopping", q.now().UTC()
		})
		return r.status(), false, ErrQueueStopped
	case <-ctx.Done():
		// Run has not taken it (it is not running yet): give up.
		r.update(func(s *ReplayStatus) { s.Done, s.Err, s.FinishedAt = true, "not started", q.now().UTC() })
		return r.status(), false, fmt.Errorf("start replay: %w", ctx.Err())
	}
	return r.status(), false, nil
}

// runningFor returns the running replay of subscription subID, if any. It
// is called with q.mu held.
func (q *Queue) runningFor(subID string) (ReplayStatus, bool) {
	for _, r := range q.replays {
		if s := r.status(); !s.Done && s.SubscriptionID == subID {
			return s, true
		}
	}
	return ReplayStatus{}, false
}

// joinOrRefuse answers a replay asked for while running runs: joined when
// query asks for the same range, ErrReplayRunning otherwise.
func joinOrRefuse(running ReplayStatus, query history.Query) (ReplayStatus, bool, error) {
	if running.Since.Equal(query.Since) && running.Until.Equal(query.Until) {
		return running, true, nil
	}
	return running, false, fmt.Errorf("%w (replay %s, since %s)", ErrReplayRunning, running.ID, running.Since.Format(time.RFC3339))
}

// pruneReplays forgets the oldest finished replays beyond replaysKept. It
// is called with q.mu held.
func (q *Queue) pruneReplays() {
	for extra := len(q.replays) - replaysKept; extra > 0; extra-- {
		i := -1
		for j, r := range q.replays {
			if r.status().Done {
				i = j
				break
			}
		}
		if i < 0 {
			return
		}
		q.replays = append(q.replays[:i], q.replays[i+1:]...)
	}
}

// Replay returns the status of replay id, if this replica runs or ran it.
func (q *Queue) Replay(id string) (ReplayStatus, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range q.replays {
		if r.st.ID == id {
			return r.status(), true
		}
	}
	return ReplayStatus{}, false
}

// runReplay carries out r until its end or ctx's.
func (q *Queue) runReplay(ctx context.Context, r *replay) {
	var mu sync.Mutex
	inRow := 0
	errTooMany := errors.New("too many requeues failed in a row")
	var lastErr error
	gerr := q.paced(ctx, r.query, r.status().Rate, func(ctx context.Context, d history.Delivery, t *turn) error {
		err := q.requeue(ctx, d, t)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, ErrConflict):
			r.update(func(s *ReplayStatus) { s.Skipped++ })
		case err != nil:
			r.update(func(s *ReplayStatus) { s.Failed++ })
			q.log.Warn().Err(err).Str("delivery_id", d.ID).Msg("replay: requeue failed")
			if inRow++; inRow >= replayMaxFailuresInRow {
				lastErr = err
				return errTooMany
			}
		default:
			inRow = 0
			r.update(func(s *ReplayStatus) { s.Sent++ })
		}
		return nil
	})
	var err error
	switch {
	case errors.Is(gerr, errTooMany):
		err = fmt.Errorf("stopped: %d requeues failed in a row, the last: %w", replayMaxFailuresInRow, lastErr)
	case ctx.Err() != nil:
		err = errors.New("stopped: webhookd is shutting down; replay again to send what is left")
	case gerr != nil:
		err = fmt.Errorf("stopped: %w", gerr)
	}
	r.update(func(s *ReplayStatus) {
		s.Done, s.FinishedAt = true, q.now().UTC()
		if err != nil {
			s.Err = err.Error()
		}
	})
	st := r.status()
	ev := q.log.Info()
	if err != nil {
		ev = q.log.Warn().Err(err)
	}
	ev.Str("replay_id", st.ID).Str("subscription_id", st.SubscriptionID).Int("planned", st.Planned).
		Int("sent", st.Sent).Int("skipped", st.Skipped).Int("failed", st.Failed).
		Dur("took", st.FinishedAt.Sub(st.StartedAt)).Msg("replay finished")
}
