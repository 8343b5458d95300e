package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/signature"
)

// receiver is one loopback HTTP endpoint. It verifies both signatures of
// every request, and tells its collector of each receipt.
type receiver struct {
	srv    *http.Server
	url    string
	secret atomic.Pointer[string]
	col    atomic.Pointer[collector]
	bufs   sync.Pool

	mu   sync.Mutex
	seen []uint64 // bit per event sequence: deduplication
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	r := &receiver{url: "http://" + ln.Addr().String() + "/hook"}
	r.bufs.New = func() any { return new(bytes.Buffer) }
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *receiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
}

// ServeHTTP reads the body, verifies X-Webhook-Signature and the Standard
// Webhooks signature, reads the event's sequence and publish time from it,
// and answers 204.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	buf := r.bufs.Get().(*bytes.Buffer)
	defer r.bufs.Put(buf)
	buf.Reset()
	if _, err := io.Copy(buf, io.LimitReader(req.Body, 2<<20)); err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	now := time.Now()
	body := buf.Bytes()
	col := r.col.Load()
	secret := r.secret.Load()
	ok := secret != nil && signature.Verify(*secret, body, req.Header.Get(delivery.HeaderSignature)) &&
		signature.VerifyStandard(*secret, req.Header.Get(delivery.HeaderStandardID), req.Header.Get(delivery.HeaderStandardTimestamp),
			req.Header.Get(delivery.HeaderStandardSignature), body, now, 5*time.Minute) == nil
	if col != nil {
		if !ok {
			col.badSignatures.Add(1)
		} else if seq, sent, err := parseMark(body); err != nil {
			col.unreadable.Add(1)
		} else {
			col.receipt(now, now.Sub(time.Unix(0, sent)), r.first(seq))
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// first reports whether event seq arrives here for the first time.
func (r *receiver) first(seq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := int(seq / 64)
	for i >= len(r.seen) {
		r.seen = append(r.seen, make([]uint64, len(r.seen)+1024)...)
	}
	bit := uint64(1) << (seq % 64)
	if r.seen[i]&bit != 0 {
		return false
	}
	r.seen[i] |= bit
	return true
}

// eventData returns event data of size bytes carrying seq and the publish
// time, padded: {"seq":N,"sent":UNIXNANO,"pad":"xxx…"}.
func eventData(seq uint64, sent time.Time, size int) []byte {
	b := make([]byte, 0, size)
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"sent":`...)
	b = strconv.AppendInt(b, sent.UnixNano(), 10)
	b = append(b, `,"pad":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

var errNoMark = errors.New("no seq or sent field in the body")

// parseMark reads seq and sent from a delivered envelope.
func parseMark(body []byte) (seq uint64, sent int64, err error) {
	num := func(key string) (string, bool) {
		i := bytes.Index(body, []byte(key))
		if i < 0 {
			return "", false
		}
		rest := body[i+len(key):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		return string(rest[:j]), j > 0
	}
	s, ok1 := num(`"seq":`)
	t, ok2 := num(`"sent":`)
	if !ok1 || !ok2 {
		return 0, 0, errNoMark
	}
	seq, err1 := strconv.ParseUint(s, 10, 64)
	sent, err2 := strconv.ParseInt(t, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, errNoMark
	}
	return seq, sent, nil
}
