package subscriptions

import (
	"testing"
	"time"
)

// BenchmarkCodec measures what sealing costs per record write (encode) and
// per mirror apply or bucket read (decode), with a current and a previous
// secret.
func BenchmarkCodec(b *testing.B) {
	key, err := NewKey(make([]byte, KeySize))
	if err != nil {
		b.Fatal(err)
	}
	sub := Subscription{
		ID: "6f1c2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", URL: "https://hooks.example.com/x", Events: []string{"task.*"},
		Active: true, Secret: "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		PreviousSecrets: []PreviousSecret{{Secret: "whsec_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=", ExpiresAt: time.Now()}},
		CreatedAt:       time.Now(), UpdatedAt: time.Now(),
	}
	for _, c := range []struct {
		name  string
		codec codec
	}{{"plaintext", codec{}}, {"sealed", codec{key: key}}} {
		rec, err := c.codec.encode(sub)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/encode", func(b *testing.B) {
			for b.Loop() {
				if _, err := c.codec.encode(sub); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/decode", func(b *testing.B) {
			for b.Loop() {
				if _, _, err := c.codec.decode(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
