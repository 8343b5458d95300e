package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// orderedCollector reads, on scrape, how many keys of each ordered
// subscription have deliveries waiting on this replica.
type orderedCollector struct {
	desc    *prometheus.Desc
	waiting func() map[string]int
	subs    Subscriptions // nil: only the subscriptions with keys waiting
}

// Describe implements prometheus.Collector.
func (c *orderedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector: every ordered subscription this
// replica knows, 0 when none of its keys waits here.
func (c *orderedCollector) Collect(ch chan<- prometheus.Metric) {
	waiting := c.waiting()
	seen := map[string]bool{}
	if c.subs != nil {
		for _, s := range c.subs.List() {
			if s.OrderingKey != "" {
				seen[s.ID] = true
				ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(waiting[s.ID]), s.ID)
			}
		}
	}
	for id, n := range waiting {
		if !seen[id] {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), id)
		}
	}
}

// WatchOrderedKeys adds webhookd_ordered_keys_waiting{subscription}, read
// from waiting (the dispatcher's OrderedKeysWaiting) on scrape.
func (m *Metrics) WatchOrderedKeys(waiting func() map[string]int) error {
	c := &orderedCollector{
		desc: prometheus.NewDesc("webhookd_ordered_keys_waiting",
			"Keys of an ordered subscription with deliveries waiting on this replica (each key's head waits for its turn, a retry or its endpoint).",
			[]string{"subscription"}, nil),
		waiting: waiting, subs: m.subsList,
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("metrics: register: %w", err)
	}
	return nil
}

// OrderingKeyFailed counts an event whose ordering key could not be
// evaluated for subscription subID: it was delivered unordered.
func (m *Metrics) OrderingKeyFailed(subID string) {
	m.keyErrors.WithLabelValues(subID).Inc()
}
