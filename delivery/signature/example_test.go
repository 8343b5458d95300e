package signature_test

import (
	"fmt"
	"time"

	"github.com/robotlab/webhookd/delivery/signature"
)

// A receiver checks X-Webhook-Signature with the secret it was given.
func ExampleVerify() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="
	body := []byte(`{"id":"e1","event":"task.completed","timestamp":"2024-01-15T10:30:00Z","data":{}}`)
	header := signature.Sign(secret, body) // what the dispatcher sends

	fmt.Println(signature.Verify(secret, body, header))
	fmt.Println(signature.Verify(secret, []byte(`{"tampered":true}`), header))
	// Output:
	// true
	// false
}

// A receiver checks the Standard Webhooks headers (webhook-id,
// webhook-timestamp, webhook-signature).
func ExampleVerifyStandard() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="
	body := []byte(`{"id":"e1","event":"task.completed","timestamp":"2024-01-15T10:30:00Z","data":{}}`)
	sent := time.Unix(1705314600, 0)
	sig, _ := signature.SignStandard([]string{secret}, "delivery-1", sent, body)

	err := signature.VerifyStandard(secret, "delivery-1", "1705314600", sig, body, sent.Add(time.Minute), 5*time.Minute)
	fmt.Println(err)
	// Output: <nil>
}
