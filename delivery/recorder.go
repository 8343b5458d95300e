package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/jetstream"
)

// Recorder writes audit records: to the AUDIT stream, so that every replica
// (and this one after a restart) indexes them, and at once to this replica's
// Store, so this replica's next attempt counts from it without waiting.
type Recorder struct {
	js      natsjs.JetStream
	store   *Store
	replica string
}

// NewRecorder returns a Recorder that stamps records with replica.
func NewRecorder(js natsjs.JetStream, store *Store, replica string) *Recorder {
	return &Recorder{js: js, store: store, replica: replica}
}

// Record publishes rec to AUDIT, waits for the stream's acknowledgement and
// applies rec to the local store. It returns an error when either fails; the
// caller must then not settle the job as done. Recording the same record
// twice is harmless (deduplicated by id).
func (r *Recorder) Record(ctx context.Context, rec Record) error {
	rec.Replica = r.replica
	if rec.Attempt != nil {
		rec.Attempt.Replica = r.replica
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("delivery: encode record: %w", err)
	}
	if _, err := r.js.Publish(ctx, jetstream.AuditSubject(rec.SubscriptionID), b, natsjs.WithMsgID(recordID(rec))); err != nil {
		return fmt.Errorf("delivery: publish record %s: %w", recordID(rec), err)
	}
	return r.store.Apply(rec)
}

// recordID identifies a record for deduplication: one per attempt, one per
// other status change.
func recordID(rec Record) string {
	if rec.Attempt != nil {
		return rec.DeliveryID + "/attempt/" + strconv.Itoa(rec.Attempt.Attempt)
	}
	return rec.DeliveryID + "/" + string(rec.Status) + "/" + strconv.FormatInt(rec.At.UnixNano(), 10)
}
