package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Result is one run's outcome, as written to the JSON file.
type Result struct {
	Started      time.Time `json:"started"`
	Args         []string  `json:"args"`
	CPUs         int       `json:"cpus"`
	LoadAvgStart string    `json:"loadavg_start"`
	LoadAvgEnd   string    `json:"loadavg_end"`
	Fanout       int       `json:"fanout"`
	Rate         int       `json:"rate"` // 0: flat out
	Count        int       `json:"count"`
	Size         int       `json:"size"`
	Backlog      bool      `json:"backlog"`
	// Floor: the floor pipeline ran in the tool instead of webhookd (--floor);
	// CPU and RSS are the whole tool's.
	Floor bool `json:"floor,omitempty"`

	Published        int64   `json:"published"`
	PublishErrors    int64   `json:"publish_errors"`
	PublishSeconds   float64 `json:"publish_seconds"`
	PublishedPerSec  float64 `json:"published_per_sec"`
	Expected         int64   `json:"expected_deliveries"`
	Delivered        int64   `json:"delivered"` // first deliveries of each event to each receiver
	Duplicates       int64   `json:"duplicates"`
	BadSignatures    int64   `json:"bad_signatures"`
	Unreadable       int64   `json:"unreadable"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	// RateBasis says over which span DeliveriesPerSec is taken.
	RateBasis string  `json:"rate_basis"`
	P50ms     float64 `json:"p50_ms"`
	P90ms     float64 `json:"p90_ms"`
	P99ms     float64 `json:"p99_ms"`
	Maxms     float64 `json:"max_ms"`

	CPUSeconds       float64 `json:"cpu_seconds"`
	CPUCores         float64 `json:"cpu_cores"`
	CPUPerDeliveryUS float64 `json:"cpu_per_delivery_us"`
	IdleRSSMiB       float64 `json:"idle_rss_mib"`
	PeakRSSMiB       float64 `json:"peak_rss_mib"`
	EndRSSMiB        float64 `json:"end_rss_mib"`
	// EndRSSFileMiB is the part of EndRSSMiB that is mapped files (bbolt's
	// mmap), not heap.
	EndRSSFileMiB float64 `json:"end_rss_file_mib"`

	RawPerSec float64 `json:"raw_loopback_per_sec"`
	RawShare  float64 `json:"raw_share_percent"`

	Series []Point `json:"series"`

	JSONFile string `json:"-"`
	SVGFile  string `json:"-"`
	LogFile  string `json:"-"` // the started webhookd's log, copied beside them
}

// Point is one second of the run.
type Point struct {
	T         int     `json:"t"`
	Published int     `json:"published"`
	Delivered int     `json:"delivered"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	RSSMiB    float64 `json:"rss_mib,omitempty"`
	CPUCores  float64 `json:"cpu_cores,omitempty"`
	// Consumers are webhookd's shared consumers at the end of the second.
	Consumers []consumerState `json:"consumers,omitempty"`
}

func ms(us uint32) float64 { return float64(us) / 1000 }
func mib(b int64) float64  { return float64(b) / (1 << 20) }
func numCPU() int          { return runtime.NumCPU() }

// fill computes the figures from what the collector saw. The delivery rate
// is taken over the seconds of publishing for a duration run (the pipeline's
// steady rate), from the first publish to the last receipt for a count run,
// and from the release to the last receipt for a backlog run (the drain).
func (r *Result) fill(col *collector, published, pubErrs int64, start, pubStop, released time.Time) {
	all, secs := col.snapshot()
	r.Published, r.PublishErrors = published, pubErrs
	r.PublishSeconds = pubStop.Sub(start).Seconds()
	if r.PublishSeconds > 0 {
		r.PublishedPerSec = float64(published) / r.PublishSeconds
	}
	r.Expected = published * int64(r.Fanout)
	r.Delivered, r.Duplicates = col.delivered.Load(), col.duplicates.Load()
	r.BadSignatures, r.Unreadable = col.badSignatures.Load(), col.unreadable.Load()
	last := time.Unix(0, col.lastReceipt.Load())
	switch {
	case r.Backlog:
		if span := last.Sub(released).Seconds(); span > 0 {
			r.DeliveriesPerSec, r.RateBasis = float64(r.Delivered)/span, "drain: webhookd's restart to the last receipt"
		}
	case r.Count > 0:
		if span := last.Sub(start).Seconds(); span > 0 {
			r.DeliveriesPerSec, r.RateBasis = float64(r.Delivered)/span, "first publish to last receipt"
		}
	default:
		whole := int(r.PublishSeconds)
		if whole > 0 {
			r.DeliveriesPerSec = float64(col.deliveredBetween(0, whole)) / float64(whole)
			r.RateBasis = fmt.Sprintf("receipts in the %d whole seconds of publishing", whole)
		}
	}
	r.P50ms, r.P90ms, r.P99ms = ms(quantile(all, 0.50)), ms(quantile(all, 0.90)), ms(quantile(all, 0.99))
	if len(all) > 0 {
		r.Maxms = ms(all[len(all)-1])
	}
	if r.RawPerSec > 0 {
		r.RawShare = 100 * r.DeliveriesPerSec / r.RawPerSec
	}
	for i, s := range secs {
		r.Series = append(r.Series, Point{T: i, Published: s.published, Delivered: s.delivered,
			P50ms: ms(quantile(s.lat, 0.5)), P99ms: ms(quantile(s.lat, 0.99)), RSSMiB: mib(s.rss), CPUCores: s.cpu.Seconds(), Consumers: s.consumers})
	}
}

// print writes the report.
func (r *Result) print(w io.Writer) {
	mode := "flat out"
	if r.Rate > 0 {
		mode = fmt.Sprintf("%d events/s", r.Rate)
	}
	if r.Backlog {
		mode = "backlog drain"
	}
	fmt.Fprintf(w, "\nfan-out %d, %s, %d-byte events, %d CPUs, load average %s → %s\n", r.Fanout, mode, r.Size, r.CPUs, r.LoadAvgStart, r.LoadAvgEnd)
	fmt.Fprintf(w, "published      %d events in %.1fs: %.0f events/s (%d publish errors)\n", r.Published, r.PublishSeconds, r.PublishedPerSec, r.PublishErrors)
	fmt.Fprintf(w, "delivered      %d of %d (%d duplicates, %d bad signatures, %d unreadable)\n", r.Delivered, r.Expected, r.Duplicates, r.BadSignatures, r.Unreadable)
	fmt.Fprintf(w, "deliveries/s   %.0f (%s)\n", r.DeliveriesPerSec, r.RateBasis)
	fmt.Fprintf(w, "latency        publish to receipt p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", r.P50ms, r.P90ms, r.P99ms, r.Maxms)
	who := "webhookd      "
	if r.Floor {
		who = "floor, tool   " // the pipeline, the publisher and the receivers
	}
	if r.CPUSeconds > 0 || r.PeakRSSMiB > 0 {
		fmt.Fprintf(w, who+" %.1f CPU seconds (%.2f cores, %.1f µs per delivery), RSS idle %.1f MiB, peak %.1f MiB, at end %.1f MiB (%.1f MiB of it mapped files)\n",
			r.CPUSeconds, r.CPUCores, r.CPUPerDeliveryUS, r.IdleRSSMiB, r.PeakRSSMiB, r.EndRSSMiB, r.EndRSSFileMiB)
	}
	if r.Floor {
		fmt.Fprintf(w, "note           the floor pipeline ran in this tool instead of webhookd: its CPU and RSS include the publisher and the receivers\n")
	}
	if r.Backlog {
		fmt.Fprintf(w, "note           NATS ran in this tool (webhookd stopped while it queued the events): webhookd's CPU and RSS are its own, without the server's\n")
	}
	if r.RawPerSec > 0 {
		fmt.Fprintf(w, "vs loopback    %.0f deliveries/s is %.1f %% of the raw loopback HTTP rate, %.0f requests/s\n", r.DeliveriesPerSec, r.RawShare, r.RawPerSec)
	}
	fmt.Fprintf(w, "result         %s\nplot           %s\n", r.JSONFile, r.SVGFile)
	if r.LogFile != "" {
		fmt.Fprintf(w, "webhookd log   %s\n", r.LogFile)
	}
}

// write saves the JSON result, the SVG plot and a copy of webhookd's log
// (when logPath is not "") in dir.
func (r *Result) write(dir, logPath string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("result dir: %w", err)
	}
	mode := "flat"
	if r.Rate > 0 {
		mode = fmt.Sprintf("rate%d", r.Rate)
	}
	if r.Backlog {
		mode = "backlog"
	}
	if r.Floor {
		mode += "-floor"
	}
	base := filepath.Join(dir, fmt.Sprintf("bench-%s-fanout%d-%s", r.Started.Format("20060102-150405"), r.Fanout, mode))
	r.JSONFile, r.SVGFile = base+".json", base+".svg"
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if err := os.WriteFile(r.JSONFile, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	if err := os.WriteFile(r.SVGFile, []byte(r.svg()), 0o644); err != nil {
		return fmt.Errorf("write plot: %w", err)
	}
	if logPath != "" {
		if b, err := os.ReadFile(logPath); err == nil {
			r.LogFile = base + ".webhookd.log"
			if err := os.WriteFile(r.LogFile, b, 0o644); err != nil {
				return fmt.Errorf("copy webhookd log: %w", err)
			}
		}
	}
	return nil
}

// svg plots throughput, latency and RSS over time, one panel each.
func (r *Result) svg() string {
	const w, panelH, left, right, top, gap = 900, 180, 70, 20, 40, 50
	type line struct {
		name  string
		color string
		y     func(Point) float64
	}
	measured := "webhookd"
	if r.Floor {
		measured = "floor pipeline and tool"
	}
	panels := []struct {
		title string
		unit  string
		lines []line
	}{
		{"throughput", "per second", []line{
			{"published events", "#888888", func(p Point) float64 { return float64(p.Published) }},
			{"deliveries", "#1f77b4", func(p Point) float64 { return float64(p.Delivered) }},
		}},
		{"publish to receipt", "ms", []line{
			{"p50", "#2ca02c", func(p Point) float64 { return p.P50ms }},
			{"p99", "#d62728", func(p Point) float64 { return p.P99ms }},
		}},
		{measured, "RSS MiB / CPU cores×100", []line{
			{"RSS MiB", "#9467bd", func(p Point) float64 { return p.RSSMiB }},
			{"CPU cores ×100", "#ff7f0e", func(p Point) float64 { return 100 * p.CPUCores }},
		}},
	}
	h := top + len(panels)*(panelH+gap)
	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&s, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&s, `<text x="%d" y="20" font-size="14">webhook-bench: fan-out %d, %s; %.0f deliveries/s, p99 %.2f ms, load average %s</text>`+"\n",
		left, r.Fanout, map[bool]string{true: fmt.Sprintf("%d events/s", r.Rate), false: "flat out"}[r.Rate > 0], r.DeliveriesPerSec, r.P99ms, r.LoadAvgStart)
	n := len(r.Series)
	xOf := func(i int) float64 {
		if n <= 1 {
			return left
		}
		return left + float64(i)*float64(w-left-right)/float64(n-1)
	}
	for pi, panel := range panels {
		y0 := top + pi*(panelH+gap) + 10
		maxY := 0.0
		for _, l := range panel.lines {
			for _, p := range r.Series {
				maxY = max(maxY, l.y(p))
			}
		}
		if maxY == 0 {
			maxY = 1
		}
		fmt.Fprintf(&s, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#ccc"/>`+"\n", left, y0, w-left-right, panelH)
		fmt.Fprintf(&s, `<text x="%d" y="%d">%s (%s)</text>`+"\n", left, y0-4, panel.title, panel.unit)
		fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="end">%.4g</text>`+"\n", left-4, y0+10, maxY)
		fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="end">0</text>`+"\n", left-4, y0+panelH)
		fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="end">%ds</text>`+"\n", w-right, y0+panelH+14, max(n-1, 0))
		for li, l := range panel.lines {
			var pts []string
			for i, p := range r.Series {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(i), float64(y0+panelH)-l.y(p)/maxY*panelH))
			}
			fmt.Fprintf(&s, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", l.color, strings.Join(pts, " "))
			fmt.Fprintf(&s, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", left+10+li*160, y0+panelH+14, l.color, l.name)
		}
	}
	s.WriteString("</svg>\n")
	return s.String()
}
