package delivery_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/subscriptions"
)

// benchJob is a first attempt carrying 1 KiB of event data.
func benchJob() delivery.Job {
	data := []byte(`{"task_id":"T123","robot_id":"R001","pad":"` + string(bytes.Repeat([]byte("x"), 990)) + `"}`)
	return delivery.Job{ID: "0b5d3c8e-8d7a-5f3e-9c1a-2b4d6e8f0a1c", EventID: "evt-1", Event: "task.completed",
		EventTime: time.Now(), SubscriptionID: "sub-1", CreatedAt: time.Now(), Attempt: 1, Data: data}
}

// BenchmarkEnvelopeAndSign measures building the body a receiver gets and
// both signatures of it, for 1 KiB of event data.
func BenchmarkEnvelopeAndSign(b *testing.B) {
	secret, err := signature.NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	job, secrets, now := benchJob(), []string{secret}, time.Now()
	b.ReportAllocs()
	for b.Loop() {
		body := job.Envelope()
		_ = signature.SignAll(secrets, body)
		if _, err := signature.SignStandard(secrets, job.ID, now, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAttempt measures one whole attempt, guard and signing included,
// to a loopback receiver answering 204, from 16 goroutines at once.
func BenchmarkAttempt(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	b.Cleanup(srv.Close)
	d := delivery.NewDeliverer(delivery.Config{DefaultTimeout: 5 * time.Second, AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	b.Cleanup(d.Close)
	secret, err := signature.NewSecret()
	if err != nil {
		b.Fatal(err)
	}
	sub := subscriptions.Subscription{ID: "sub-1", URL: srv.URL, Secret: secret, Active: true}
	job := benchJob()
	b.ReportAllocs()
	b.SetParallelism(8) // 8×GOMAXPROCS
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := d.Attempt(context.Background(), job, sub); res.Outcome != delivery.OutcomeSucceeded {
				b.Errorf("attempt: %s %v", res.Reason, res.Err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "attempts/s")
}
