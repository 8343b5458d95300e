package delivery_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/robotlab/webhookd/delivery"
)

// The fuzz targets of this file state what the package promises for any
// input: event data, job messages and Retry-After values. Their seed corpora
// are in testdata/fuzz/<target>; `go test` runs them, `make fuzz` explores
// further.

// fuzzTime maps any (sec, nsec) to an instant in years 0000 to 9999 UTC, the
// range RFC 3339 can write, so that every fuzzed time is one JetStream could
// stamp.
func fuzzTime(sec, nsec int64) time.Time {
	lo := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).Unix()
	span := hi - lo + 1
	return time.Unix(lo+((sec%span)+span)%span, ((nsec%1e9)+1e9)%1e9).UTC()
}

// requireOneLine fails unless err is a single line: errors end up in logs and
// API answers.
func requireOneLine(t *testing.T, err error) {
	t.Helper()
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Fatalf("error spans lines: %q", err.Error())
	}
}

// envelope is the payload POSTed to receivers, decoded by a receiver.
type envelope struct {
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// FuzzEnvelope checks CheckData for every body and, for the bodies it
// accepts, the envelope NewJob and Envelope build: valid JSON with exactly
// the four fields, the same id, event and timestamp (RFC 3339 UTC, seconds),
// and "data" equal to the body with surrounding white space trimmed, byte for
// byte (never re-encoded).
func FuzzEnvelope(f *testing.F) {
	f.Add([]byte(`{"task_id":"T123","robot_id":"R001"}`), "evt-1", "task.completed", int64(1705314600), int64(0))
	f.Add([]byte(" \t\r\n{\"x\":\"<<<<\"}\n\n"), "<id>&", "alert.triggered", int64(-62135596800), int64(999999999))
	f.Add([]byte(`{"s":"\u0000\ud83d\ude00\\\"","n":-0.0e+10,"a":[[[]]],"t":true,"z":null}`), "\u2028", "x", int64(253402300799), int64(1))
	f.Add([]byte("{\"a\":1}\x00"), "id\x00", "t", int64(0), int64(0))
	f.Add([]byte("{\"\xff\":1}"), "\xff\xfe", "\xc3", int64(1), int64(-1))
	f.Add([]byte(`{"a":1}{"b":2}`), "", "", int64(0), int64(0))
	f.Add([]byte("{}\u00a0\u2028\u0085"), "e", "t", int64(0), int64(0))
	f.Fuzz(func(t *testing.T, data []byte, id, typ string, sec, nsec int64) {
		if err := delivery.CheckData(data); err != nil {
			if !errors.Is(err, delivery.ErrNotObject) {
				t.Fatalf("CheckData error %v does not wrap ErrNotObject", err)
			}
			requireOneLine(t, err)
			if n := len(err.Error()); n > 200 {
				t.Fatalf("CheckData error is %d bytes: it must not echo the body", n)
			}
			return
		}
		trimmed := bytes.TrimSpace(data)
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &obj); err != nil {
			t.Fatalf("CheckData accepted %q, which is not a JSON object: %v", trimmed, err)
		}

		ev := delivery.Event{ID: id, Type: typ, Timestamp: fuzzTime(sec, nsec), Seq: uint64(sec), Data: data}
		job := delivery.NewJob(ev, "sub-1", time.Unix(nsec, 0))
		if job.ID != delivery.JobID(id, "sub-1", uint64(sec), ev.Timestamp) || job.Attempt != 1 || !bytes.Equal(job.Data, data) {
			t.Fatalf("NewJob = %+v: want the delivery id, attempt 1 and the data unchanged", job)
		}
		env := job.Envelope()
		if !utf8.Valid(env) || !json.Valid(env) {
			t.Fatalf("envelope is not valid UTF-8 JSON: %q", env)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(env, &fields); err != nil || len(fields) != 4 {
			t.Fatalf("envelope %q: want exactly id, event, timestamp and data (err %v)", env, err)
		}
		var got envelope
		if err := json.Unmarshal(env, &got); err != nil {
			t.Fatalf("decode envelope %q: %v", env, err)
		}
		// JSON strings are UTF-8: each invalid byte of an id becomes U+FFFD,
		// exactly as a []rune conversion does.
		if want := string([]rune(id)); got.ID != want {
			t.Fatalf("envelope id %q, want %q", got.ID, want)
		}
		if want := string([]rune(typ)); got.Event != want {
			t.Fatalf("envelope event %q, want %q", got.Event, want)
		}
		wantTS := ev.Timestamp.Truncate(time.Second)
		if got.Timestamp != wantTS.Format(time.RFC3339) || !strings.HasSuffix(got.Timestamp, "Z") {
			t.Fatalf("envelope timestamp %q, want %s in RFC 3339 UTC", got.Timestamp, wantTS.Format(time.RFC3339))
		}
		if ts, err := time.Parse(time.RFC3339, got.Timestamp); err != nil || !ts.Equal(wantTS) {
			t.Fatalf("envelope timestamp %q reads back as %v (%v), want %v", got.Timestamp, ts, err, wantTS)
		}
		if !bytes.Equal(got.Data, trimmed) || !bytes.HasSuffix(env, append(append([]byte(`,"data":`), trimmed...), '}')) {
			t.Fatalf("envelope %q: want the event data byte for byte, %q, as its last field", env, trimmed)
		}
	})
}

// FuzzJobRoundTrip checks that every job webhookd builds (NewJob, Retry,
// Requeued) travels as a message (Msg) and decodes (DecodeJob) to the same
// job, with its data as the message body byte for byte.
func FuzzJobRoundTrip(f *testing.F) {
	f.Add("evt-1", "task.completed", "sub-1", int64(1705314600), int64(5), uint64(42), int64(1705314601), uint8(0), int64(0), []byte(`{"a":1}`))
	f.Add("\x00", "\xff", " sub ", int64(-62167219200), int64(0), uint64(0), int64(253402300799), uint8(7), int64(-1), []byte{})
	f.Add("id\r\nX: y", "a.b.c", "s\tt", int64(0), int64(999999999), uint64(1<<63), int64(1), uint8(3), int64(99), []byte("\x00\xff{"))
	f.Fuzz(func(t *testing.T, evID, typ, subID string, evSec, evNsec int64, seq uint64, nowSec int64, steps uint8, notBefore int64, data []byte) {
		if evID == "" || typ == "" || subID == "" {
			return // events without an id or a type are not routed; subscriptions have ids
		}
		ev := delivery.Event{ID: evID, Type: typ, Timestamp: fuzzTime(evSec, evNsec), Seq: seq, Data: data}
		job := delivery.NewJob(ev, subID, fuzzTime(nowSec, evNsec))
		// Walk a few steps of the job's life: retries and operator requeues.
		for i := range steps % 8 {
			switch i % 3 {
			case 0, 1:
				job = job.Retry(fuzzTime(notBefore+int64(i), evNsec))
			default:
				job = job.Requeued(steps&0x80 != 0)
			}
		}
		m := job.Msg("deliveries." + subID)
		if !bytes.Equal(m.Data, data) {
			t.Fatalf("message body %q, want the event data %q", m.Data, data)
		}
		back, err := delivery.DecodeJob(m.Header, m.Data)
		if err != nil {
			t.Fatalf("DecodeJob(Msg(%+v)): %v", job, err)
		}
		requireSameJob(t, job, back)
	})
}

// requireSameJob compares two jobs field by field, times by instant.
func requireSameJob(t *testing.T, want, got delivery.Job) {
	t.Helper()
	same := want.ID == got.ID && want.EventID == got.EventID && want.Event == got.Event &&
		want.SubscriptionID == got.SubscriptionID && want.Attempt == got.Attempt && want.Base == got.Base &&
		want.EventTime.Equal(got.EventTime) && want.CreatedAt.Equal(got.CreatedAt) &&
		want.NotBefore.Equal(got.NotBefore) && bytes.Equal(want.Data, got.Data)
	if !same {
		t.Fatalf("job changed on the way:\nwant %+v\n got %+v", want, got)
	}
}

// Header names of a job message; the package keeps them unexported, and a
// test that spells them out also pins the wire format.
var jobHeaders = []string{
	"Webhook-Delivery", "Webhook-Event-Id", "Webhook-Event", "Webhook-Event-Time", "Webhook-Subscription",
	"Webhook-Created", "Webhook-Attempt", "Webhook-Attempt-Base", "Webhook-Not-Before",
}

// FuzzDecodeJob feeds DecodeJob arbitrary headers and bodies: it never
// panics, every error wraps ErrBadJob and is one line, and a job it accepts
// is well formed (ids set, attempt from 1, base below the attempt, data
// unchanged) and survives the next publish (Retry, Msg, DecodeJob).
func FuzzDecodeJob(f *testing.F) {
	ok := []string{"d1", "e1", "task.completed", "2024-01-15T10:30:00.123456789Z", "s1", "2024-01-15T10:30:01Z", "2", "1", "2024-01-15T10:31:00Z"}
	f.Add(uint16(0x1ff), ok[0], ok[1], ok[2], ok[3], ok[4], ok[5], ok[6], ok[7], ok[8], "", []byte(`{"a":1}`))
	f.Add(uint16(0x07f), ok[0], ok[1], ok[2], ok[3], ok[4], ok[5], "1", "", "", "X-Other: 1\nWebhook-Attempt: 9", []byte{})
	f.Add(uint16(0x1ff), "d", "e", "t", "2024-01-15T10:30:00+01:00", "s", "0000-01-01T00:00:00Z", "+3", "0", "9999-12-31T23:59:59.999999999Z", "", []byte("\x00"))
	f.Add(uint16(0x1ff), "d", "e", "t", "2024-13-45T99:99:99Z", "s", "yesterday", "0", "-1", "now", "", []byte(nil))
	f.Add(uint16(0x0ff), "d", "e", "t", ok[3], "s", ok[5], "99999999999999999999", "5", "", "", []byte("x"))
	f.Add(uint16(0x1ff), "d", "e", "t", ok[3], "s", ok[5], "3", "3", "\n", "Webhook-Delivery:\nWebhook-Event-Id: \x00", []byte("{"))
	f.Fuzz(func(t *testing.T, mask uint16, delivID, eventID, event, eventTime, subID, created, attempt, base, notBefore, extra string, data []byte) {
		h := nats.Header{}
		for i, v := range []string{delivID, eventID, event, eventTime, subID, created, attempt, base, notBefore} {
			if mask&(1<<i) != 0 {
				h.Set(jobHeaders[i], v)
			}
		}
		for line := range strings.Lines(extra) {
			if k, v, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":"); ok {
				h.Add(k, strings.TrimSpace(v))
			}
		}
		job, err := delivery.DecodeJob(h, data)
		if err != nil {
			if !errors.Is(err, delivery.ErrBadJob) {
				t.Fatalf("DecodeJob error %v does not wrap ErrBadJob", err)
			}
			requireOneLine(t, err)
			return
		}
		if job.ID != h.Get(jobHeaders[0]) || job.EventID != h.Get(jobHeaders[1]) || job.Event != h.Get(jobHeaders[2]) || job.SubscriptionID != h.Get(jobHeaders[4]) {
			t.Fatalf("decoded ids %+v differ from the headers %v", job, h)
		}
		if job.ID == "" || job.EventID == "" || job.Event == "" || job.SubscriptionID == "" {
			t.Fatalf("accepted a job without an id: %+v", job)
		}
		if job.Attempt < 1 || job.Base < 0 || job.Base >= job.Attempt {
			t.Fatalf("accepted attempt %d with base %d", job.Attempt, job.Base)
		}
		if !bytes.Equal(job.Data, data) {
			t.Fatalf("data changed: %q, want %q", job.Data, data)
		}
		if !writable(job.EventTime) || !writable(job.CreatedAt) || !writable(job.NotBefore) || job.Attempt == math.MaxInt {
			t.Fatalf("accepted a job whose retry cannot be written: %+v", job)
		}
		next := job.Retry(job.CreatedAt)
		m := next.Msg("deliveries.x")
		again, err := delivery.DecodeJob(m.Header, m.Data)
		if err != nil {
			t.Fatalf("the retry of an accepted job does not decode: %v", err)
		}
		requireSameJob(t, next, again)
	})
}

// writable reports whether RFC 3339 can write t in UTC (a 4-digit year).
func writable(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 0 && y <= 9999
}

// FuzzParseRetryAfter checks that any Retry-After value gives 0 or a delay
// in [1s, 1h]; that delay-seconds give that many seconds, clamped; and that
// an HTTP date gives the time until it, clamped.
func FuzzParseRetryAfter(f *testing.F) {
	for _, v := range []string{"", "0", "30", "3600", "3601", "-5", "+5", " 7 ", "99999999999999999999", "1e3", "0x10", "soon",
		"Sun, 29 Nov 2026 12:02:00 GMT", "Sunday, 29-Nov-26 12:02:00 GMT", "Sun Nov 29 12:02:00 2026", "Sun, 29 Nov 2026 12:02:00 PST", "\x00", "٣"} {
		f.Add(v, int64(1796040000), int64(0), int64(120))
	}
	f.Add("", int64(-1), int64(-1), int64(-1<<62))
	f.Fuzz(func(t *testing.T, v string, nowSec, nowNsec, offset int64) {
		now := time.Unix(nowSec%(1<<34), nowNsec%1e9) // within years 1425 to 2514
		requireRetryAfter := func(in string, got, want time.Duration) {
			t.Helper()
			if got != want {
				t.Fatalf("ParseRetryAfter(%q, %v) = %v, want %v", in, now, got, want)
			}
		}
		got := delivery.ParseRetryAfter(v, now)
		if got != 0 && (got < time.Second || got > time.Hour) {
			t.Fatalf("ParseRetryAfter(%q) = %v: want 0 or a delay in [1s, 1h]", v, got)
		}
		if digits.MatchString(v) {
			want := time.Duration(0) // too many digits for a number: unreadable
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 63); err == nil {
				want = clampRetryAfter(time.Duration(min(n, 3600)) * time.Second)
			}
			requireRetryAfter(v, got, want)
		}
		at := now.Add(time.Duration(offset%(10*365*24*3600)) * time.Second).UTC()
		date := at.Format(http.TimeFormat)
		requireRetryAfter(date, delivery.ParseRetryAfter(date, now), clampRetryAfter(at.Truncate(time.Second).Sub(now)))
		requireRetryAfter(strconv.FormatInt(max(offset, 0), 10), delivery.ParseRetryAfter(strconv.FormatInt(max(offset, 0), 10), now),
			clampRetryAfter(time.Duration(min(max(offset, 0), 3600))*time.Second))
	})
}

var digits = regexp.MustCompile(`^\s*[0-9]+\s*$`)

func clampRetryAfter(d time.Duration) time.Duration { return min(max(d, time.Second), time.Hour) }
