package history

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/jetstream"
)

// Recorder writes audit records to the AUDIT stream, the durable record of
// every attempt and verdict. Every replica's Indexer applies them to its
// Store; the bbolt store is an index that can be rebuilt from the stream, so
// the workers do not wait for it.
type Recorder struct {
	js      natsjs.JetStream
	store   *Store
	replica string
}

// NewRecorder returns a Recorder that stamps records with replica.
func NewRecorder(js natsjs.JetStream, store *Store, replica string) *Recorder {
	return &Recorder{js: js, store: store, replica: replica}
}

// Record queues rec (with keep) and calls done once AUDIT confirmed it.
// TEMPORARY shim until group commit lands: one goroutine per record.
func (r *Recorder) Record(rec Record, keep *delivery.Job, done func(error)) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := r.publish(ctx, r.stamp(rec), keep)
		done(err)
	}()
}

// Run drives the recorder until ctx is done.
func (r *Recorder) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// Publish records rec, waits for the confirmation and applies it to this
// replica's store, so an API answer that follows reads its own write.
func (r *Recorder) Publish(ctx context.Context, rec Record, keep *delivery.Job) error {
	rec = r.stamp(rec)
	dup, err := r.publish(ctx, rec, keep)
	if err != nil || dup || r.store == nil {
		return err
	}
	return r.store.Apply(rec)
}

// stamp marks rec as this replica's and bounds its free-text fields.
func (r *Recorder) stamp(rec Record) Record {
	rec.Replica = r.replica
	if rec.Attempt != nil {
		a := *rec.Attempt
		a.Replica = r.replica
		rec.Attempt = &a
	}
	rec.Bound()
	return rec
}

func (r *Recorder) publish(ctx context.Context, rec Record, keep *delivery.Job) (dup bool, err error) {
	id := recordID(rec)
	if keep != nil {
		ack, err := r.js.PublishMsg(ctx, keep.Msg(jetstream.AuditJobSubject(rec.SubscriptionID)), natsjs.WithMsgID(id+"/job"))
		if err != nil {
			return false, fmt.Errorf("delivery: keep job of %s: %w", id, err)
		}
		rec.JobSeq = ack.Sequence
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return false, fmt.Errorf("delivery: encode record: %w", err)
	}
	ack, err := r.js.Publish(ctx, jetstream.AuditSubject(rec.SubscriptionID), b, natsjs.WithMsgID(id))
	if err != nil {
		return false, fmt.Errorf("delivery: publish record %s: %w", id, err)
	}
	return ack.Duplicate, nil
}

// PublishAsync starts publishing rec, a record without a kept job, to
// AUDIT and returns at once with the future of the stream's
// acknowledgement, so a worker need not wait for it. The record counts as
// written only when the future resolves with a PubAck (Duplicate: an
// earlier run had recorded it, as with Publish); until then, or on its
// error, the caller must not settle the job as done.
func (r *Recorder) PublishAsync(rec Record) (natsjs.PubAckFuture, error) {
	rec = r.stamp(rec)
	id := recordID(rec)
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("delivery: encode record: %w", err)
	}
	m := nats.NewMsg(jetstream.AuditSubject(rec.SubscriptionID))
	m.Data = b
	f, err := r.js.PublishMsgAsync(m, natsjs.WithMsgID(id))
	if err != nil {
		return nil, fmt.Errorf("delivery: publish record %s: %w", id, err)
	}
	return f, nil
}

// recordID identifies a record for deduplication: one per attempt, one per
// other status change.
func recordID(rec Record) string {
	if rec.Attempt != nil {
		return rec.DeliveryID + "/attempt/" + strconv.Itoa(rec.Attempt.Attempt)
	}
	return rec.DeliveryID + "/" + string(rec.Status) + "/" + strconv.FormatInt(rec.At.UnixNano(), 10)
}
