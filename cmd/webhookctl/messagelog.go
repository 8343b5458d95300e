package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/robotlab/webhookd/admin/client"
)

// pollEvery is how often --follow asks for new rows.
const pollEvery = time.Second

// followLookback is how far before the newest delivery seen
// deliveries list --follow asks again: a delivery enters the history with
// its first record (its first attempt, or being held), which can come
// after deliveries created later.
const followLookback = 5 * time.Minute

// maxFollowPages bounds the pages one poll of deliveries list --follow reads.
const maxFollowPages = 10

func (a *app) evList() *cobra.Command {
	var q client.EventQuery
	var since string
	var follow bool
	cmd := &cobra.Command{
		Use:   "list [--type TYPE] [--since DURATION|TIME] [--limit N] [--follow]",
		Short: "List the events EVENTS keeps (the message log), oldest first, whatever became of them",
		Long: `List the events EVENTS keeps (the message log), oldest first: routed events for
--event-retention (webhookd's flag, 24h by default), and every event not routed yet.
Each shows what became of it: routed (with its deliveries), no subscriber, rejected,
or not routed yet.

--follow prints the events stored from --since (default: now) and then each new one
as it is stored, polling about once a second, until interrupted (Ctrl-C, exit 0).
With -o json it prints one JSON object per line.`,
		Example: `  webhookctl events list --since 1h
  webhookctl events list --type task.completed --limit 10
  webhookctl events list --follow
  webhookctl -o json events list --type alert.triggered | jq '.items[].id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			now := time.Now()
			if q.Since, err = parseSince(since, now); err != nil {
				return err
			}
			if follow {
				if q.Since.IsZero() && q.After == 0 {
					q.Since = now
				}
				return a.followEvents(cmd.Context(), c, q)
			}
			page, err := c.ListEvents(cmd.Context(), q)
			if err != nil {
				return err
			}
			return a.print(page, func(w *tabwriter.Writer) {
				eventColumns.table(w, cellsOf(page.Items, eventCells))
				if page.NextCursor != "" {
					row(w, "")
					row(w, "more: --after "+page.NextCursor)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Type, "type", "", "only this event type (task.completed)")
	f.StringVar(&since, "since", "", "stored at or after (RFC 3339, or a duration back from now)")
	f.Uint64Var(&q.After, "after", 0, "stored after this sequence (the SEQ of the last event seen)")
	f.IntVar(&q.Limit, "limit", 50, "page size, up to 1000")
	f.BoolVarP(&follow, "follow", "f", false, "print new events as they are stored, until interrupted")
	return cmd
}

// eventColumns are the events table's: headers, and the widths a follow
// pads them to (it prints rows as they come, so cannot measure them first).
var eventColumns = columns{
	names:  []string{"SEQ", "ID", "TYPE", "TIMESTAMP", "SIZE", "STATUS", "DELIVERIES"},
	widths: []int{5, 36, 16, 20, 6, 14, 0},
}

func eventCells(e client.Event) []string {
	return []string{fmt.Sprint(e.Seq), e.ID, e.Type, ts(e.Timestamp), fmt.Sprint(e.Size), eventStatus(e.Status), fmt.Sprint(e.DeliveryCount)}
}

// columns are a table's headers and, for a follow, their widths.
type columns struct {
	names  []string
	widths []int
}

// line writes cells padded to the widths, two spaces apart.
func (c columns) line(w io.Writer, cells []string) error {
	var b strings.Builder
	for i, cell := range cells {
		if i == len(cells)-1 {
			b.WriteString(cell)
			break
		}
		b.WriteString(cell)
		b.WriteString(strings.Repeat(" ", max(c.widths[i]-utf8.RuneCountInString(cell), 0)+2))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// table writes a whole table: the headers and rows, aligned.
func (c columns) table(w *tabwriter.Writer, rows [][]string) {
	row(w, anys(c.names)...)
	for _, r := range rows {
		row(w, anys(r)...)
	}
}

func anys(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// eventStatus is an event's status in words.
func eventStatus(s string) string {
	switch s {
	case client.EventNoSubscriber:
		return "no subscriber"
	case client.EventUnrouted:
		return "not routed yet"
	}
	return s
}

// followEvents prints the events q selects, then each new one, until ctx
// is done: it asks for the events after the last one printed, about once a
// second, so each is printed once.
func (a *app) followEvents(ctx context.Context, c *client.Client, q client.EventQuery) error {
	q.Limit = 1000
	header := true
	return a.poll(ctx, func(ctx context.Context) error {
		for {
			page, err := c.ListEvents(ctx, q)
			if err != nil {
				return err
			}
			if err := stream(a, page.Items, &header, eventColumns, eventCells); err != nil {
				return err
			}
			if n := len(page.Items); n > 0 {
				q.After, q.Since = page.Items[n-1].Seq, time.Time{}
			}
			if page.NextCursor == "" {
				return nil
			}
		}
	})
}

// poll calls once at once and then about every pollEvery, until ctx is
// done (nil) or once fails.
func (a *app) poll(ctx context.Context, once func(context.Context) error) error {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		if err := once(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// stream prints rows as a follow does: with -o json one object per line;
// else table lines padded to cols' widths, the headers before the first.
func stream[T any](a *app, items []T, header *bool, cols columns, cells func(T) []string) error {
	if a.output == "json" {
		for _, it := range items {
			b, err := json.Marshal(it)
			if err != nil {
				return err
			}
			if _, err := a.stdout.Write(append(b, '\n')); err != nil {
				return err
			}
		}
		return nil
	}
	if *header {
		if err := cols.line(a.stdout, cols.names); err != nil {
			return err
		}
		*header = false
	}
	for _, it := range items {
		if err := cols.line(a.stdout, cells(it)); err != nil {
			return err
		}
	}
	return nil
}

// cellsOf maps items to their cells.
func cellsOf[T any](items []T, cells func(T) []string) [][]string {
	out := make([][]string, len(items))
	for i, it := range items {
		out[i] = cells(it)
	}
	return out
}

func (a *app) evGet() *cobra.Command {
	var since string
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show an event: its payload and every delivery it produced, or why there is none",
		Example: `  webhookctl events get evt-T124-failed
  webhookctl events get 0b6c1f4e-… --since 48h   # search older events too`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			e, err := c.GetEvent(cmd.Context(), args[0], from)
			if err != nil {
				return err
			}
			return a.print(e, func(w *tabwriter.Writer) {
				row(w, "ID", e.ID)
				row(w, "TYPE", e.Type)
				if e.Seq > 0 {
					row(w, "SEQ", e.Seq)
					row(w, "SIZE", e.Size)
				}
				row(w, "TIMESTAMP", ts(e.Timestamp))
				row(w, "STATUS", eventStatus(e.Status))
				if e.Note != "" && e.Status != client.EventRejected {
					row(w, "NOTE", e.Note)
				}
				if e.Reason != "" {
					row(w, "REASON", e.Reason)
				}
				row(w, "")
				switch {
				case len(e.Payload) > 0:
					row(w, "PAYLOAD")
					var pretty bytes.Buffer
					if json.Indent(&pretty, e.Payload, "", "  ") != nil {
						pretty.Reset()
						pretty.Write(e.Payload)
					}
					for _, l := range strings.Split(body(pretty.String(), -1), "\n") {
						row(w, "  "+l)
					}
				case e.RawData != "":
					row(w, "DATA", fmt.Sprintf("%q", truncate(e.RawData, 512)))
				}
				if len(e.Deliveries) == 0 {
					return
				}
				row(w, "")
				row(w, "DELIVERY", "SUBSCRIPTION", "STATUS", "ATTEMPTS", "LAST", "UPDATED")
				for _, d := range e.Deliveries {
					row(w, d.ID, orDash(d.SubscriptionID), d.Status, len(d.Attempts), lastResult(d), ts(d.UpdatedAt))
				}
			})
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "for an id no delivery has: search the events stored at or after (RFC 3339, or a duration back from now) rather than the newest 100,000")
	return cmd
}

// followDeliveries prints the deliveries q selects created from q.Since,
// then each new one as it enters the history, oldest first, until ctx is
// done. Each poll asks again from followLookback before the newest one
// seen, so a delivery recorded late is still printed, and each is printed
// once.
func (a *app) followDeliveries(ctx context.Context, c *client.Client, q client.DeliveryQuery) error {
	seen := map[string]time.Time{}
	header := true
	newest := q.Since
	return a.poll(ctx, func(ctx context.Context) error {
		pq := q
		pq.Limit, pq.Cursor = 1000, ""
		pq.Since = newest.Add(-followLookback)
		if pq.Since.Before(q.Since) {
			pq.Since = q.Since
		}
		var fresh []client.Delivery
		for range maxFollowPages {
			page, err := c.ListDeliveries(ctx, pq)
			if err != nil {
				return err
			}
			for _, d := range page.Items {
				if _, ok := seen[d.ID]; !ok {
					fresh = append(fresh, d)
				}
			}
			if pq.Cursor = page.NextCursor; pq.Cursor == "" {
				break
			}
		}
		slices.SortFunc(fresh, func(x, y client.Delivery) int {
			if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(x.ID, y.ID)
		})
		for _, d := range fresh {
			seen[d.ID] = d.CreatedAt
			if d.CreatedAt.After(newest) {
				newest = d.CreatedAt
			}
		}
		for id, created := range seen { // what no later poll asks for again
			if created.Before(newest.Add(-2 * followLookback)) {
				delete(seen, id)
			}
		}
		return stream(a, fresh, &header, deliveryColumns, deliveryCells)
	})
}

// deliveryColumns are the deliveries table's.
var deliveryColumns = columns{
	names:  []string{"ID", "EVENT", "EVENT ID", "SUBSCRIPTION", "STATUS", "ATTEMPTS", "LAST", "UPDATED"},
	widths: []int{36, 16, 36, 36, 9, 8, 18, 0},
}

func deliveryCells(d client.Delivery) []string {
	return []string{d.ID, d.Event, d.EventID, orDash(d.SubscriptionID), d.Status, fmt.Sprint(len(d.Attempts)), lastResult(d), ts(d.UpdatedAt)}
}

// errFollowFlags refuses flags that end a listing when following.
var errFollowFlags = errors.New("--follow has no end: --until and --cursor cannot go with it")
