// Command receiver is a sample webhook receiver: it verifies both signatures
// of every delivery and prints the event. Run it with the secret printed by
// "webhookctl subscriptions create":
//
//	go run ./testdata/receiver --addr 127.0.0.1:9000 --secret whsec_...
//
// With --fail N it answers 503 to the first N requests, to watch retries.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/robotlab/webhookd/delivery/signature"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	secret := flag.String("secret", "", "the subscription's secret (whsec_...)")
	fail := flag.Int64("fail", 0, "answer 503 to the first N requests")
	flag.Parse()
	if *secret == "" {
		log.Fatal("receiver: --secret is required")
	}
	var n atomic.Int64
	http.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		plain := signature.Verify(*secret, body, r.Header.Get("X-Webhook-Signature"))
		std := signature.VerifyStandard(*secret, r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"),
			r.Header.Get("webhook-signature"), body, time.Now(), 5*time.Minute)
		if !plain || std != nil {
			log.Printf("REJECTED delivery %s: X-Webhook-Signature ok=%v, webhook-signature: %v",
				r.Header.Get("X-Webhook-Delivery"), plain, std)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		i := n.Add(1)
		status := http.StatusOK
		if i <= *fail {
			status = http.StatusServiceUnavailable
		}
		fmt.Printf("%s delivery=%s attempt=%s -> %d %s\n", r.Header.Get("X-Webhook-Event"),
			r.Header.Get("X-Webhook-Delivery"), r.Header.Get("X-Webhook-Attempt"), status, body)
		w.WriteHeader(status)
	})
	log.Printf("receiver listening on http://%s", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
