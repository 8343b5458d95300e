package signature_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/robotlab/webhookd/delivery/signature"
)

// flip returns body with the byte at pos changed by mask (1 when mask is 0).
func flip(body []byte, pos uint, mask byte) []byte {
	out := bytes.Clone(body)
	out[pos%uint(len(out))] ^= max(mask, 1)
	return out
}

// FuzzVerify checks X-Webhook-Signature: Verify never panics; what Sign
// makes always verifies (in any letter case, with surrounding white space);
// a flipped body byte or another secret never verifies; and an arbitrary
// header verifies only if it is Sign's value.
func FuzzVerify(f *testing.F) {
	f.Add(specSecret, []byte(specBody), "", uint(0), byte(1))
	f.Add("", []byte{}, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", uint(3), byte(0x80))
	f.Add("whsec_\x00\xff", []byte("{\"x\":\"<<<<\"}\x00"), " ,", uint(7), byte(0xff))
	f.Add(strings.Repeat("k", 200), bytes.Repeat([]byte("\\u0000"), 500), strings.Repeat("0", 64), uint(1<<40), byte(2))
	f.Fuzz(func(t *testing.T, secret string, body []byte, header string, pos uint, mask byte) {
		good := signature.Sign(secret, body)
		if len(good) != 64 || strings.ToLower(good) != good {
			t.Fatalf("Sign = %q: want 64 lowercase hex digits", good)
		}
		for _, sig := range []string{good, strings.ToUpper(good), " \t" + good + "\r\n"} {
			if !signature.Verify(secret, body, sig) {
				t.Fatalf("Verify rejects %q, made by Sign", sig)
			}
		}
		for _, sig := range []string{good[:len(good)-1], good + "0", good[:len(good)/2]} {
			if signature.Verify(secret, body, sig) {
				t.Fatalf("Verify accepts %q, a cut or extended signature", sig)
			}
		}
		if len(body) > 0 && signature.Verify(secret, flip(body, pos, mask), good) {
			t.Fatal("Verify accepts a body with a flipped byte")
		}
		// Another secret: a different key (appending a zero byte would not
		// do: HMAC pads short keys with zeros).
		if signature.Verify(secret+"x", body, good) {
			t.Fatal("Verify accepts the signature under another secret")
		}
		if signature.Verify(secret, body, header) != strings.EqualFold(strings.TrimSpace(header), good) {
			t.Fatalf("Verify(%q) disagrees with comparing it to %q", header, good)
		}
	})
}

// fuzzSecret returns a valid secret built from b: its key is b, cut or
// zero-padded to 24..64 bytes.
func fuzzSecret(b []byte) (string, []byte) {
	key := make([]byte, min(max(len(b), 24), 64))
	copy(key, b)
	return signature.Prefix + base64.StdEncoding.EncodeToString(key), key
}

// referenceMAC is the Standard Webhooks signature, computed here from the
// specification: HMAC-SHA256 of "id.timestamp.body".
func referenceMAC(key []byte, msgID string, unix int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "%s.%d.", msgID, unix)
	m.Write(body)
	return m.Sum(nil)
}

// FuzzVerifyStandard checks the Standard Webhooks headers. With arbitrary
// secrets, ids, timestamps, signature headers and bodies, VerifyStandard
// never panics, fails only with ErrBadSecret, ErrTimestamp or ErrMismatch,
// and accepts only a "v1," entry that carries the specification's MAC. What
// SignStandard makes equals the reference library's signature and verifies
// (also during a rotation, with either secret) while the timestamp is within
// the tolerance; a flipped body byte or another id never verifies.
func FuzzVerifyStandard(f *testing.F) {
	key := []byte("0123456789abcdef01234567")
	f.Add(key, specSecret, specID, strconv.Itoa(specTS), specSig, []byte(specBody), int64(specTS), int64(0), int64(300), uint(0), byte(1))
	f.Add([]byte{}, "whsec_", "", "", "", []byte{}, int64(0), int64(0), int64(0), uint(0), byte(0))
	f.Add(bytes.Repeat([]byte{0xff}, 100), "whsec_!!!!", "d1", "+1614265330", "v1, v1,,, v2,abc \tv1,===", []byte("\x00"), int64(-1), int64(301), int64(300), uint(9), byte(0x40))
	// The spec vector with a signature from the future, another version, cut short.
	f.Add(key, specSecret, specID, strconv.Itoa(specTS+301), specSig, []byte(specBody), int64(specTS), int64(-301), int64(300), uint(0), byte(1))
	f.Add(key, specSecret, specID, strconv.Itoa(specTS), "v2,"+specSig[3:], []byte(specBody), int64(specTS), int64(0), int64(300), uint(0), byte(1))
	f.Add(key, specSecret, specID, strconv.Itoa(specTS), specSig[:11], []byte(specBody), int64(specTS), int64(0), int64(300), uint(0), byte(1))
	f.Add(key, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", specID, "99999999999999999999", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", []byte(specBody), int64(1<<62), int64(-1<<62), int64(-5), uint(1), byte(2))
	f.Fuzz(func(t *testing.T, keyBytes []byte, rawSecret, msgID, tsHeader, sigHeader string, body []byte, nowSec, skew, tolSec int64, pos uint, mask byte) {
		now := time.Unix(nowSec%(1<<34), 0)
		tol := time.Duration(tolSec%(1<<20)) * time.Second

		// Arbitrary headers and secret.
		err := signature.VerifyStandard(rawSecret, msgID, tsHeader, sigHeader, body, now, tol)
		if err != nil {
			if !errors.Is(err, signature.ErrBadSecret) && !errors.Is(err, signature.ErrTimestamp) && !errors.Is(err, signature.ErrMismatch) {
				t.Fatalf("VerifyStandard error %v is none of the package's sentinels", err)
			}
		} else {
			k, kerr := signature.DecodeSecret(rawSecret)
			unix, terr := strconv.ParseInt(tsHeader, 10, 64)
			if kerr != nil || terr != nil || !carries(sigHeader, referenceMAC(k, msgID, unix, body)) {
				t.Fatalf("VerifyStandard accepted %q (timestamp %q, secret error %v) without the MAC", sigHeader, tsHeader, kerr)
			}
			if d := now.Sub(time.Unix(unix, 0)); d > tol || d < -tol {
				t.Fatalf("VerifyStandard accepted timestamp %q, %s from now (tolerance %s)", tsHeader, d, tol)
			}
		}

		// What SignStandard makes.
		secret, key := fuzzSecret(keyBytes)
		sent := now.Add(-time.Duration(skew%(1<<20)) * time.Second)
		ts := strconv.FormatInt(sent.Unix(), 10)
		sig, err := signature.SignStandard([]string{secret}, msgID, sent, body)
		if err != nil {
			t.Fatalf("SignStandard with a valid secret: %v", err)
		}
		if want := "v1," + base64.StdEncoding.EncodeToString(referenceMAC(key, msgID, sent.Unix(), body)); sig != want {
			t.Fatalf("SignStandard = %q, want %q", sig, want)
		}
		wh, err := standardwebhooks.NewWebhookRaw(key)
		if err != nil {
			t.Fatal(err)
		}
		if ref, err := wh.Sign(msgID, sent, body); err != nil || ref != sig {
			t.Fatalf("reference library signs %q (%v), we sign %q", ref, err, sig)
		}
		if msgID != "" {
			h := http.Header{}
			h.Set("webhook-id", msgID)
			h.Set("webhook-timestamp", ts)
			h.Set("webhook-signature", sig)
			if err := wh.VerifyIgnoringTimestamp(body, h); err != nil {
				t.Fatalf("reference library rejects our signature: %v", err)
			}
		}

		inTolerance := now.Sub(sent) <= tol && sent.Sub(now) <= tol
		err = signature.VerifyStandard(secret, msgID, ts, sig, body, now, tol)
		switch {
		case inTolerance && err != nil:
			t.Fatalf("VerifyStandard rejects what SignStandard made %s ago (tolerance %s): %v", now.Sub(sent), tol, err)
		case !inTolerance && !errors.Is(err, signature.ErrTimestamp):
			t.Fatalf("VerifyStandard of a signature %s old (tolerance %s) = %v, want ErrTimestamp", now.Sub(sent), tol, err)
		case !inTolerance:
			return
		}

		// A rotation: the new secret first, then the old one.
		other, _ := fuzzSecret(append([]byte{key[0] ^ 0xff}, key[1:]...))
		both, err := signature.SignStandard([]string{other, secret}, msgID, sent, body)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{other, secret} {
			if err := signature.VerifyStandard(s, msgID, ts, both, body, now, tol); err != nil {
				t.Fatalf("VerifyStandard during a rotation: %v", err)
			}
		}
		if len(body) > 0 {
			if err := signature.VerifyStandard(secret, msgID, ts, sig, flip(body, pos, mask), now, tol); !errors.Is(err, signature.ErrMismatch) {
				t.Fatalf("VerifyStandard with a flipped body byte = %v, want ErrMismatch", err)
			}
		}
		if err := signature.VerifyStandard(secret, msgID+"x", ts, sig, body, now, tol); !errors.Is(err, signature.ErrMismatch) {
			t.Fatalf("VerifyStandard with another id = %v, want ErrMismatch", err)
		}
	})
}

// carries reports whether a webhook-signature header has a "v1," entry whose
// base64 decodes to mac.
func carries(header string, mac []byte) bool {
	for _, entry := range strings.Fields(header) {
		if sig, ok := strings.CutPrefix(entry, "v1,"); ok {
			if got, err := base64.StdEncoding.DecodeString(sig); err == nil && bytes.Equal(got, mac) {
				return true
			}
		}
	}
	return false
}
