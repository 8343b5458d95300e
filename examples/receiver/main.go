// Command receiver is a webhookd receiver built on the receiver package: the
// middleware verifies every delivery (401 with the reason otherwise) and the
// handler prints the event.
//
//	WEBHOOK_SECRET=whsec_... go run ./examples/receiver --addr 127.0.0.1:9000
//
// During a secret rotation set WEBHOOK_SECRET to the new and the old secret,
// comma-separated.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/robotlab/webhookd/receiver"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	flag.Parse()
	var secrets []string
	for _, s := range strings.Split(os.Getenv("WEBHOOK_SECRET"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			secrets = append(secrets, s)
		}
	}
	v, err := receiver.New(receiver.Config{
		Secrets: secrets,
		Scheme:  receiver.SchemeStandard, // signs the time too: replays are refused
		OnReject: func(r *http.Request, err error) {
			fmt.Printf("rejected delivery=%s: %v\n", r.Header.Get("X-Webhook-Delivery"), err)
		},
	})
	if err != nil {
		log.Fatalf("receiver: %v (set WEBHOOK_SECRET to the subscription's secret)", err)
	}
	http.Handle("POST /", v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, _ := receiver.EventFrom(r.Context())
		// Deliveries are at least once: dedupe on ev.DeliveryID.
		fmt.Printf("verified %s id=%s delivery=%s attempt=%d data=%s\n", ev.Type, ev.ID, ev.DeliveryID, ev.Attempt, ev.Data)
	})))
	fmt.Printf("listening on http://%s\n", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}
