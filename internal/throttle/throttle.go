// Package throttle slows down the guessing of credentials: it counts failed
// attempts per client address and over all addresses, and says when an
// address (or everyone) must wait before trying again. The admin API's
// bearer-token check and the console's login share one Failures.
//
// Only failures spend the budget: a client that gets its credential right
// is never slowed. While an address is throttled, its attempts are refused
// without being checked, right or wrong, so a throttled guesser learns
// nothing.
package throttle

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Config sets the budgets. Zero fields take the defaults.
type Config struct {
	// PerAddr is how many failures an address earns back per second
	// (default 1), and PerAddrBurst how many it may make at once
	// (default 10).
	PerAddr      rate.Limit
	PerAddrBurst int
	// Global and GlobalBurst are the same over all addresses (defaults 20
	// per second, 100 at once): they bound guessing from many addresses.
	Global      rate.Limit
	GlobalBurst int
	// MaxAddrs bounds the addresses remembered (default 10,000); beyond it
	// the ones back to a full budget are forgotten first.
	MaxAddrs int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Failures counts failed attempts. It is safe for concurrent use.
type Failures struct {
	cfg    Config
	mu     sync.Mutex
	global *rate.Limiter
	addrs  map[string]*rate.Limiter
}

// New returns a Failures with cfg's budgets.
func New(cfg Config) *Failures {
	if cfg.PerAddr <= 0 {
		cfg.PerAddr = 1
	}
	if cfg.PerAddrBurst <= 0 {
		cfg.PerAddrBurst = 10
	}
	if cfg.Global <= 0 {
		cfg.Global = 20
	}
	if cfg.GlobalBurst <= 0 {
		cfg.GlobalBurst = 100
	}
	if cfg.MaxAddrs <= 0 {
		cfg.MaxAddrs = 10_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Failures{
		cfg: cfg, global: rate.NewLimiter(cfg.Global, cfg.GlobalBurst), addrs: map[string]*rate.Limiter{},
	}
}

// Client returns the throttling key of a request's RemoteAddr: its IP
// address, or for IPv6 its /64 network, which one host usually holds whole.
// A RemoteAddr that does not parse is its own key.
func Client(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.WithZone("").Unmap()
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked().String()
	}
	return ip.String()
}

// Wait returns how long client must wait before an attempt may be checked,
// 0 when it may be checked now.
func (f *Failures) Wait(client string) time.Duration {
	now := f.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	wait := waitFor(f.global, now)
	if lim := f.addrs[client]; lim != nil {
		wait = max(wait, waitFor(lim, now))
	}
	return wait
}

// RetryAfter returns wait in whole seconds, rounded up, for a Retry-After
// header.
func RetryAfter(wait time.Duration) int {
	return int((wait + time.Second - 1) / time.Second)
}

// waitFor returns how long until lim holds one token.
func waitFor(lim *rate.Limiter, now time.Time) time.Duration {
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(lim.Limit()) * float64(time.Second))
}

// Fail records a failed attempt by client. It reports whether that attempt
// used up client's budget (or the global one), so the caller can log the
// start of throttling once rather than every refusal.
func (f *Failures) Fail(client string) (exhausted bool) {
	now := f.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	lim := f.addrs[client]
	if lim == nil {
		f.forget(now)
		lim = rate.NewLimiter(f.cfg.PerAddr, f.cfg.PerAddrBurst)
		f.addrs[client] = lim
	}
	lim.AllowN(now, 1)
	f.global.AllowN(now, 1)
	return lim.TokensAt(now) < 1 || f.global.TokensAt(now) < 1
}

// forget makes room for one more address when the map is full: addresses
// back to a full budget go first, then any.
func (f *Failures) forget(now time.Time) {
	if len(f.addrs) < f.cfg.MaxAddrs {
		return
	}
	for k, lim := range f.addrs {
		if lim.TokensAt(now) >= float64(f.cfg.PerAddrBurst) {
			delete(f.addrs, k)
		}
	}
	for k := range f.addrs {
		if len(f.addrs) < f.cfg.MaxAddrs {
			return
		}
		delete(f.addrs, k)
	}
}
