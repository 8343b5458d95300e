package daemontest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// OrderedReceiver is a real HTTP receiver that checks, per robot, the
// promise of an ordering key: it sees event n+1 only after it answered
// event n with a 2xx, and never two of one robot's events at once. Events
// carry {"robot_id": R, "n": N}. It answers after delay and fails (503) the
// requests fail picks.
type OrderedReceiver struct {
	*httptest.Server
	delay time.Duration
	fail  func(robot string, n int, attempt string) bool

	mu         sync.Mutex
	done       map[string]int  // robot → events answered 2xx (in order: 0..done-1)
	inFlight   map[string]bool // robot → a request of its is being answered
	concurrent int             // robots in flight now
	maxRobots  int             // most robots in flight at once
	violations []string
	requests   int
	duplicates int // a request for an event already answered 2xx (a crash's duplicate)
	failed     int
}

// NewOrderedReceiver starts an OrderedReceiver, closed when t ends.
func NewOrderedReceiver(t testing.TB, delay time.Duration, fail func(robot string, n int, attempt string) bool) *OrderedReceiver {
	t.Helper()
	r := &OrderedReceiver{delay: delay, fail: fail, done: map[string]int{}, inFlight: map[string]bool{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *OrderedReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var ev struct {
		Data struct {
			Robot string `json:"robot_id"`
			N     int    `json:"n"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &ev)
	robot, n := ev.Data.Robot, ev.Data.N
	r.mu.Lock()
	r.requests++
	switch {
	case r.inFlight[robot]:
		r.violations = append(r.violations, fmt.Sprintf("robot %s: event %d while another of its events was in flight", robot, n))
	case n < r.done[robot]:
		r.duplicates++ // already answered 2xx: a duplicate, not an overtake
	case n > r.done[robot]:
		r.violations = append(r.violations, fmt.Sprintf("robot %s: event %d before event %d was answered 2xx", robot, n, r.done[robot]))
	}
	r.inFlight[robot] = true
	r.concurrent++
	r.maxRobots = max(r.maxRobots, r.concurrent)
	r.mu.Unlock()

	time.Sleep(r.delay) // a slow receiver: this is the request being answered
	ok := !r.fail(robot, n, req.Header.Get("X-Webhook-Attempt"))

	r.mu.Lock()
	r.inFlight[robot] = false
	r.concurrent--
	if ok && n == r.done[robot] {
		r.done[robot]++
	}
	if !ok {
		r.failed++
	}
	r.mu.Unlock()
	if ok {
		w.WriteHeader(http.StatusNoContent)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
}

// Answered returns how many events were answered 2xx across robots, or
// -1 once the order was broken (a test waiting for a count stops then).
func (r *OrderedReceiver) Answered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.violations) > 0 {
		return -1
	}
	n := 0
	for _, d := range r.done {
		n += d
	}
	return n
}

// AnsweredBy returns how many of robot's events were answered 2xx.
func (r *OrderedReceiver) AnsweredBy(robot string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done[robot]
}

// Report returns what the receiver saw: the order's violations, the most
// robots in flight at once, the requests, the duplicates of events already
// answered 2xx, and the requests it failed on purpose.
func (r *OrderedReceiver) Report() (violations []string, maxRobots, requests, duplicates, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.violations...), r.maxRobots, r.requests, r.duplicates, r.failed
}
