package console

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/robotlab/webhookd/admin/client"
)

// The chart shows the deliveries created in each of the last chartMinutes
// minutes, stacked by their status now. It reads at most chartPages pages
// of 1000 through the API and says so when there were more.
const (
	chartMinutes = 60
	chartPages   = 5
	barWidth     = 10
	chartHeight  = 120
)

// chartStatuses are the stacking order, bottom up; each is a CSS class.
var chartStatuses = []string{"succeeded", "failed", "retrying", "pending", "paused", "cancelled", "rejected"}

// rect is one stacked segment of a bar.
type rect struct {
	X, Y, W, H int
	Class      string
	Title      string
}

// legend is one status with its total over the chart's window.
type legend struct {
	Status string
	Count  int
}

type chart struct {
	Width, Height int
	Bars          []rect
	Legend        []legend
	Max, Total    int
	Truncated     bool
	From, To      string
}

// chart builds the deliveries-per-minute chart from the API's list.
func (h handlers) chart(r *http.Request) (chart, error) {
	now := h.c.now().UTC()
	end := now.Truncate(time.Minute).Add(time.Minute)
	start := end.Add(-chartMinutes * time.Minute)
	counts := make([]map[string]int, chartMinutes)
	for i := range counts {
		counts[i] = map[string]int{}
	}
	c := chart{Width: chartMinutes * barWidth, Height: chartHeight,
		From: start.Format("15:04"), To: end.Format("15:04") + " UTC"}
	totals := map[string]int{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages == chartPages {
			c.Truncated = true
			break
		}
		q := url.Values{"since": {start.Format(time.RFC3339Nano)}, "limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var list client.List[client.Delivery]
		if err := h.call(r.Context(), r, http.MethodGet, "/v1/deliveries?"+q.Encode(), &list); err != nil {
			return c, err
		}
		for _, d := range list.Items {
			i := int(d.CreatedAt.Sub(start) / time.Minute)
			if i < 0 || i >= chartMinutes {
				continue
			}
			counts[i][d.Status]++
			totals[d.Status]++
			c.Total++
		}
		if cursor = list.NextCursor; cursor == "" {
			break
		}
	}
	for _, m := range counts {
		n := 0
		for _, v := range m {
			n += v
		}
		c.Max = max(c.Max, n)
	}
	for _, st := range chartStatuses {
		c.Legend = append(c.Legend, legend{Status: st, Count: totals[st]})
	}
	if c.Max == 0 {
		return c, nil
	}
	for i, m := range counts {
		y := chartHeight
		minute := start.Add(time.Duration(i) * time.Minute).Format("15:04")
		for _, st := range chartStatuses {
			n := m[st]
			if n == 0 {
				continue
			}
			hgt := max(1, n*chartHeight/c.Max)
			y -= hgt
			c.Bars = append(c.Bars, rect{X: i * barWidth, Y: y, W: barWidth - 1, H: hgt, Class: "st-" + st,
				Title: minute + " " + st + ": " + strconv.Itoa(n)})
		}
	}
	return c, nil
}
