package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// PurgerConfig is what Purger keeps of EVENTS once events are routed.
type PurgerConfig struct {
	// Interval between purges; 0: one second.
	Interval time.Duration
	// Retention keeps routed events this long after they were stored;
	// 0 purges them as soon as they are routed.
	Retention time.Duration
	// RetentionBytes caps what routed events may hold: above it the oldest
	// routed events are purged even when younger than Retention. 0: no cap.
	RetentionBytes int64
}

// Purger removes routed events from EVENTS, which is kept under Limits
// retention: about once a second it purges every event below the router
// consumer's ack floor that is older than Retention, or that makes the
// routed events exceed RetentionBytes. It never purges past the ack floor,
// so an event that has not been routed is never removed: a paused or
// stopped router stops the purge, and EVENTS then fills up and refuses new
// events (Discard New). Every replica may run one: purging up to a sequence
// is idempotent, and a stale floor is lower, never higher, than the truth.
type Purger struct {
	js     natsjs.JetStream
	cfg    PurgerConfig
	log    zerolog.Logger
	now    func() time.Time
	purged atomic.Uint64
}

// NewPurger returns a purger of EVENTS over js.
func NewPurger(js natsjs.JetStream, cfg PurgerConfig, log zerolog.Logger) *Purger {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	return &Purger{js: js, cfg: cfg, log: log.With().Str("component", "purger").Logger(), now: time.Now}
}

// Purged returns how many events this purger has removed.
func (p *Purger) Purged() uint64 { return p.purged.Load() }

// Run purges until ctx is done. A failure is logged once per streak, and
// its recovery once; Run itself returns nil when ctx ends.
func (p *Purger) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	var failing error
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		_, err := p.PurgeOnce(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil && failing == nil:
			p.log.Warn().Err(err).Msg("purging routed events failed; retrying every tick, logged once")
		case err == nil && failing != nil:
			p.log.Info().Msg("purging routed events works again")
		}
		failing = err
	}
}

// PurgeOnce makes one purge and returns how many events it removed. It
// does nothing while EVENTS is not under Limits retention (a migration not
// finished) or the router consumer does not exist.
func (p *Purger) PurgeOnce(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	str, err := p.js.Stream(ctx, StreamEvents)
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", StreamEvents, err)
	}
	info := str.CachedInfo()
	if info.Config.Retention != natsjs.LimitsPolicy || info.State.Msgs == 0 {
		return 0, nil
	}
	c, err := str.Consumer(ctx, ConsumerRouter)
	if errors.Is(err, natsjs.ErrConsumerNotFound) {
		return 0, nil // no floor known: keep everything
	}
	if err != nil {
		return 0, fmt.Errorf("consumer %s/%s info: %w", StreamEvents, ConsumerRouter, err)
	}
	limit := c.CachedInfo().AckFloor.Stream + 1 // every event below is routed
	first := info.State.FirstSeq
	if limit <= first {
		return 0, nil
	}
	target := limit
	if p.cfg.Retention > 0 {
		kept, err := p.firstSince(ctx, p.now().Add(-p.cfg.Retention), info.State.LastSeq)
		if err != nil {
			return 0, err
		}
		target = min(target, kept)
	}
	if cap := p.cfg.RetentionBytes; cap > 0 && info.State.Bytes > uint64(cap) && target < limit {
		// Drop the oldest routed events until the bytes fit, estimated
		// from the mean size; the next tick corrects an estimate short.
		excess, mean := info.State.Bytes-uint64(cap), max(info.State.Bytes/info.State.Msgs, 1)
		target = max(target, min(limit, first+(excess+mean-1)/mean))
	}
	if target <= first {
		return 0, nil
	}
	if err := str.Purge(ctx, natsjs.WithPurgeSequence(target)); err != nil {
		return 0, fmt.Errorf("purge %s below %d: %w", StreamEvents, target, err)
	}
	n := target - first // interior gaps aside; another replica may have purged some
	p.purged.Add(n)
	return n, nil
}

// firstSince returns the sequence of the first event stored at or after t,
// or last+1 when every event is older.
func (p *Purger) firstSince(ctx context.Context, t time.Time, last uint64) (uint64, error) {
	req, err := json.Marshal(struct {
		StartTime time.Time `json:"start_time"`
	}{t.UTC()})
	if err != nil {
		return 0, fmt.Errorf("encode message request: %w", err)
	}
	msg, err := p.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+StreamEvents, req)
	if err != nil {
		return 0, fmt.Errorf("find the first event since %s: %w", t.Format(time.RFC3339), err)
	}
	var resp struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *struct {
			Code    int    `json:"code"`
			ErrCode int    `json:"err_code"`
			Desc    string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("find the first event since %s: decode: %w", t.Format(time.RFC3339), err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == int(natsjs.JSErrCodeMessageNotFound):
		return last + 1, nil
	case resp.Error != nil:
		return 0, fmt.Errorf("find the first event since %s: %s (%d)", t.Format(time.RFC3339), resp.Error.Desc, resp.Error.ErrCode)
	case resp.Message == nil:
		return 0, fmt.Errorf("find the first event since %s: empty answer", t.Format(time.RFC3339))
	}
	return resp.Message.Seq, nil
}
