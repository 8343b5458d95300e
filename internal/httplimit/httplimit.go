// Package httplimit bounds how many requests one HTTP client address may
// have in flight on the paths anyone may call (PerClient).
package httplimit

import (
	"net/http"
	"sync"

	"github.com/robotlab/webhookd/internal/throttle"
)

// PerClient caps the requests one client address (throttle.Client: the IP,
// or an IPv6 /64) may have in flight through the handlers it wraps. It is
// safe for concurrent use.
type PerClient struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// NewPerClient returns a cap of max requests in flight per client address
// (max <= 0: no cap).
func NewPerClient(max int) *PerClient {
	return &PerClient{max: max, n: map[string]int{}}
}

// Wrap returns next behind the cap: a request over it is answered 429 with
// Retry-After and its connection closed, without running next.
func (p *PerClient) Wrap(next http.Handler) http.Handler {
	if p.max <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := throttle.Client(r.RemoteAddr)
		if !p.acquire(key) {
			w.Header().Set("Connection", "close")
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many requests in flight from your address", http.StatusTooManyRequests)
			return
		}
		defer p.release(key)
		next.ServeHTTP(w, r)
	})
}

func (p *PerClient) acquire(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[key] >= p.max {
		return false
	}
	p.n[key]++
	return true
}

func (p *PerClient) release(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[key]--; p.n[key] <= 0 {
		delete(p.n, key)
	}
}
