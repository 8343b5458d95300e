package receiver_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/receiver"
)

// A receiver wraps its handler; the handler sees only verified deliveries.
// During a rotation it lists the new secret and the old one.
func ExampleVerifier_Middleware() {
	v, err := receiver.New(receiver.Config{
		Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="},
		OnReject: func(r *http.Request, err error) {
			log.Printf("rejected %s: %v", r.Header.Get("X-Webhook-Delivery"), err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	handler := v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev, _ := receiver.EventFrom(r.Context())
		fmt.Printf("%s %s delivery=%s attempt=%d data=%s\n", ev.Type, ev.ID, ev.DeliveryID, ev.Attempt, ev.Data)
	}))

	// What webhookd would send (normally: http.Handle("/hooks", handler)).
	body := `{"id":"evt-1","event":"task.completed","timestamp":"2026-11-29T10:30:00Z","data":{"task_id":"T123"}}`
	sig, _ := signature.SignStandard([]string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="}, "dlv-1", time.Now(), []byte(body))
	h := http.Header{}
	h.Set("X-Webhook-Delivery", "dlv-1")
	h.Set("X-Webhook-Attempt", "1")
	h.Set("webhook-id", "dlv-1")
	h.Set("webhook-timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	h.Set("webhook-signature", sig)
	r := httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader(body))
	r.Header = h.Clone()
	w := httptest.NewRecorder()
	handler.ServeHTTP(w, r)
	fmt.Println(w.Code)

	// The same request with its body altered.
	r = httptest.NewRequest(http.MethodPost, "/hooks", strings.NewReader(strings.Replace(body, "T123", "T999", 1)))
	r.Header = h.Clone()
	w = httptest.NewRecorder()
	handler.ServeHTTP(w, r)
	fmt.Print(w.Code, " ", w.Body.String())
	// Output:
	// task.completed evt-1 delivery=dlv-1 attempt=1 data={"task_id":"T123"}
	// 200
	// 401 receiver: signature does not match: webhook-signature
}
