package main

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// collector gathers what the receivers saw, per second of the run.
type collector struct {
	start time.Time

	delivered, duplicates, badSignatures, unreadable atomic.Int64
	lastReceipt                                      atomic.Int64 // unix nanos

	mu      sync.Mutex
	seconds []second
}

// second is one second of the run.
type second struct {
	published int
	delivered int
	lat       []uint32 // publish to receipt, microseconds
	rss       int64
	cpu       time.Duration // webhookd's CPU time used in this second
	consumers []consumerState
}

// consumerState is one shared consumer at the end of a second, as
// webhookd's /v1/status shows it.
type consumerState struct {
	Name        string `json:"name"`
	Pending     uint64 `json:"pending"`
	InFlight    int    `json:"in_flight"`
	Redelivered int    `json:"redelivered"`
}

func newCollector(start time.Time) *collector { return &collector{start: start} }

func (c *collector) at(t time.Time) *second {
	i := max(int(t.Sub(c.start)/time.Second), 0)
	for i >= len(c.seconds) {
		c.seconds = append(c.seconds, second{})
	}
	return &c.seconds[i]
}

// receipt counts one request: a first delivery of its event to its
// receiver, or a duplicate.
func (c *collector) receipt(now time.Time, lat time.Duration, first bool) {
	if !first {
		c.duplicates.Add(1)
		return
	}
	c.delivered.Add(1)
	c.lastReceipt.Store(now.UnixNano())
	us := uint32(min(max(lat.Microseconds(), 0), int64(^uint32(0))))
	c.mu.Lock()
	s := c.at(now)
	s.delivered++
	s.lat = append(s.lat, us)
	c.mu.Unlock()
}

func (c *collector) published(now time.Time, n int) {
	c.mu.Lock()
	c.at(now).published += n
	c.mu.Unlock()
}

func (c *collector) sample(now time.Time, rss int64, cpu time.Duration) {
	c.mu.Lock()
	s := c.at(now.Add(-time.Millisecond)) // the second just ended
	s.rss, s.cpu = rss, cpu
	c.mu.Unlock()
}

func (c *collector) sampleConsumers(now time.Time, cs []consumerState) {
	c.mu.Lock()
	c.at(now.Add(-time.Millisecond)).consumers = cs
	c.mu.Unlock()
}

// deliveredBetween counts first deliveries in seconds [from, to).
func (c *collector) deliveredBetween(from, to int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for i := from; i < to && i < len(c.seconds); i++ {
		n += c.seconds[i].delivered
	}
	return n
}

// latencies returns every latency sample sorted, and the per-second
// series.
func (c *collector) snapshot() ([]uint32, []second) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var all []uint32
	secs := make([]second, len(c.seconds))
	for i, s := range c.seconds {
		all = append(all, s.lat...)
		l := slices.Clone(s.lat)
		slices.Sort(l)
		secs[i] = s
		secs[i].lat = l
	}
	slices.Sort(all)
	return all, secs
}

// recent returns the p99 of the last complete second, in microseconds.
func (c *collector) recentP99(now time.Time) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := int(now.Sub(c.start)/time.Second) - 1
	if i < 0 || i >= len(c.seconds) {
		return 0
	}
	l := slices.Clone(c.seconds[i].lat)
	slices.Sort(l)
	return quantile(l, 0.99)
}

// quantile returns the q-quantile of sorted samples (0 for none).
func quantile(sorted []uint32, q float64) uint32 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)))
	return sorted[min(i, len(sorted)-1)]
}
