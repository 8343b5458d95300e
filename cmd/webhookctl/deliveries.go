package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/robotlab/webhookd/admin/client"
)

func (a *app) deliveriesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "deliveries",
		Aliases: []string{"delivery", "dl"},
		Short:   "Inspect deliveries and send them again",
		Example: `  webhookctl deliveries list --status failed
  webhookctl deliveries get 5920a252-…
  webhookctl deliveries redeliver 5920a252-…`,
	}
	cmd.AddCommand(a.dlList(), a.dlGet(), a.dlRedeliver(), a.dlReplay())
	return group(cmd)
}

// parseSince accepts an RFC 3339 time or a duration back from now ("2h").
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2024-01-15T10:30:00Z) or a duration back from now (2h)", s)
	}
	return t, nil
}

func (a *app) dlList() *cobra.Command {
	var q client.DeliveryQuery
	var since, until string
	var follow bool
	cmd := &cobra.Command{
		Use:   "list [--subscription ID] [--status S] [--event ID] [--type TYPE] [--follow]",
		Short: "List deliveries, newest first",
		Long: `List deliveries, newest first.

--follow prints the deliveries created from --since (default: now), oldest first, and
then each new one as it enters the history, polling about once a second, until
interrupted (Ctrl-C, exit 0). A delivery is printed once, with its status when first
seen. With -o json it prints one JSON object per line.`,
		Example: `  webhookctl deliveries list --status failed
  webhookctl deliveries list --subscription 6f1c… --since 2h
  webhookctl deliveries list --type task.failed --status failed
  webhookctl deliveries list --follow --subscription 6f1c…
  webhookctl -o json deliveries list --event evt-123 | jq '.items[].status'`,
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
			if q.Until, err = parseSince(until, now); err != nil {
				return err
			}
			if follow {
				if !q.Until.IsZero() || q.Cursor != "" {
					return errFollowFlags
				}
				if q.Since.IsZero() {
					q.Since = now
				}
				return a.followDeliveries(cmd.Context(), c, q)
			}
			page, err := c.ListDeliveries(cmd.Context(), q)
			if err != nil {
				return err
			}
			return a.print(page, func(w *tabwriter.Writer) {
				deliveryColumns.table(w, cellsOf(page.Items, deliveryCells))
				if page.NextCursor != "" {
					row(w, "")
					row(w, "more: --cursor "+page.NextCursor)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Subscription, "subscription", "", "only this subscription")
	f.StringVar(&q.Status, "status", "", "only this status: pending, retrying, succeeded, failed, paused, cancelled, rejected")
	f.StringVar(&q.Event, "event", "", "only this event id")
	f.StringVar(&q.Type, "type", "", "only this event type (task.completed)")
	f.StringVar(&since, "since", "", "created at or after (RFC 3339, or a duration back from now)")
	f.StringVar(&until, "until", "", "created before (RFC 3339, or a duration back from now)")
	f.IntVar(&q.Limit, "limit", 50, "page size, up to 1000")
	f.StringVar(&q.Cursor, "cursor", "", "continue a previous listing")
	f.BoolVarP(&follow, "follow", "f", false, "print new deliveries as they are recorded, until interrupted")
	return cmd
}

// lastResult summarises the last attempt: its status code or reason.
func lastResult(d client.Delivery) string {
	if len(d.Attempts) == 0 {
		return orDash(d.Reason)
	}
	last := d.Attempts[len(d.Attempts)-1]
	if last.StatusCode != 0 {
		return fmt.Sprint(last.StatusCode)
	}
	return orDash(last.Reason)
}

// printDelivery shows a delivery with every attempt: the payload and each
// response cut to showBody bytes (0 hides them, -1 shows them whole), and
// each attempt's target URL and request headers.
func (a *app) printDelivery(d client.Delivery, showBody int) error {
	return a.print(d, func(w *tabwriter.Writer) {
		row(w, "ID", d.ID)
		row(w, "EVENT", d.Event+" ("+d.EventID+")")
		row(w, "SUBSCRIPTION", orDash(d.SubscriptionID))
		row(w, "URL", orDash(d.URL))
		row(w, "STATUS", d.Status)
		if d.Reason != "" && d.Reason != d.Status {
			row(w, "REASON", d.Reason)
		}
		row(w, "CREATED", ts(d.CreatedAt))
		row(w, "UPDATED", ts(d.UpdatedAt))
		if showBody != 0 {
			row(w, "")
			if len(d.Payload) > 0 {
				row(w, "PAYLOAD")
				var pretty bytes.Buffer
				if json.Indent(&pretty, d.Payload, "", "  ") != nil {
					pretty.Reset()
					pretty.Write(d.Payload)
				}
				for _, l := range strings.Split(body(pretty.String(), showBody), "\n") {
					row(w, "  "+l)
				}
			} else if d.PayloadNote != "" {
				row(w, "PAYLOAD", "- ("+d.PayloadNote+")")
			}
		}
		row(w, "")
		row(w, "ATTEMPT", "AT", "STATUS", "DURATION", "REASON", "ERROR", "REPLICA")
		for _, at := range d.Attempts {
			row(w, at.Attempt, ts(at.At), code(at), fmt.Sprintf("%dms", at.DurationMS), orDash(at.Reason),
				orDash(truncate(at.Error, 60)), orDash(at.Replica))
		}
		for _, at := range d.Attempts {
			row(w, "")
			row(w, fmt.Sprintf("ATTEMPT %d: POST %s -> %s", at.Attempt, orDash(at.URL), code(at)))
			names := make([]string, 0, len(at.RequestHeaders))
			for k := range at.RequestHeaders {
				names = append(names, k)
			}
			slices.Sort(names)
			for _, k := range names {
				row(w, "  "+k+": "+at.RequestHeaders[k])
			}
			if at.Error != "" {
				row(w, "  error: "+at.Error)
			}
			if showBody != 0 && at.Response != "" {
				row(w, "  response:")
				for _, l := range strings.Split(body(at.Response, showBody), "\n") {
					row(w, "    "+l)
				}
			}
		}
	})
}

// code is an attempt's status code, or "-" when it got no answer.
func code(at client.Attempt) string {
	if at.StatusCode == 0 {
		return "-"
	}
	return fmt.Sprint(at.StatusCode)
}

// body cuts s to n bytes (n < 0: whole), saying how much was left out; tabs
// become spaces so the table keeps its columns.
func body(s string, n int) string {
	s = strings.ReplaceAll(s, "\t", "    ")
	if n < 0 || len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d more bytes; --show-body -1 shows all)", s[:cut], len(s)-cut)
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (a *app) dlGet() *cobra.Command {
	showBody := 0
	cmd := &cobra.Command{
		Use:   "get ID [--show-body N]",
		Short: "Show a delivery: its payload, and every attempt's request headers, answer, duration and error",
		Example: `  webhookctl deliveries get 5920a252-…
  webhookctl deliveries get 5920a252-… --show-body -1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if showBody < -1 {
				return fmt.Errorf("--show-body %d: want a number of bytes, 0 to hide or -1 for all", showBody)
			}
			d, err := c.GetDelivery(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printDelivery(d, showBody)
		},
	}
	cmd.Flags().IntVar(&showBody, "show-body", 512, "bytes of the payload and of each response to print (0 hides them, -1 prints them whole)")
	return cmd
}

func (a *app) dlRedeliver() *cobra.Command {
	return &cobra.Command{
		Use:     "redeliver ID",
		Short:   "Send a delivery again, keeping its id; attempts continue from the last",
		Example: "  webhookctl deliveries redeliver 5920a252-…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.Redeliver(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printDelivery(d, 0)
		},
	}
}

func (a *app) dlReplay() *cobra.Command {
	var sub, since string
	var dryRun bool
	var perSecond float64
	cmd := &cobra.Command{
		Use:   "replay --subscription ID --since TIME [--dry-run] [--rate N]",
		Short: "Send the failed deliveries of a subscription again, oldest first, at a bounded rate",
		Long: `Send the failed deliveries of a subscription again, oldest first, at a bounded rate.

The replica that answers runs the replay itself; webhookctl follows its progress
until it ends. Interrupting webhookctl does not stop it. A replay stops when
that replica shuts down: replay again to send what is left.`,
		Example: `  webhookctl deliveries replay --subscription 6f1c… --since 2h --dry-run
  webhookctl deliveries replay --subscription 6f1c… --since 2024-01-15T10:00:00Z --rate 5`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			if perSecond <= 0 || perSecond > 1000 {
				return fmt.Errorf("--rate %g: want more than 0 and at most 1000 per second", perSecond)
			}
			req := client.ReplayRequest{Subscription: sub, Since: from, Rate: perSecond}
			if dryRun {
				plan, err := c.PlanReplay(cmd.Context(), req)
				if err != nil {
					return err
				}
				return a.print(plan, func(w *tabwriter.Writer) {
					row(w, "ID", "EVENT", "EVENT ID", "ATTEMPTS", "LAST", "CREATED")
					for _, d := range plan.Items {
						row(w, d.ID, d.Event, d.EventID, len(d.Attempts), lastResult(d), ts(d.CreatedAt))
					}
					row(w, "")
					row(w, fmt.Sprintf("%d failed deliveries would be sent again (dry run)", plan.Count))
				})
			}
			rp, err := c.StartReplay(cmd.Context(), req)
			if err != nil {
				return err
			}
			if rp, err = a.followReplay(cmd.Context(), c, rp); err != nil {
				return err
			}
			if err := a.print(rp, func(w *tabwriter.Writer) {
				row(w, fmt.Sprintf("%d failed deliveries queued again, %d skipped, %d failed", rp.Sent, rp.Skipped, rp.Failed))
			}); err != nil {
				return err
			}
			if rp.Error != "" {
				return fmt.Errorf("replay %s %s", rp.ID, rp.Error)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&sub, "subscription", "", "subscription whose failed deliveries to send (required)")
	f.StringVar(&since, "since", "", "failed deliveries created at or after (RFC 3339, or a duration back from now) (required)")
	f.BoolVar(&dryRun, "dry-run", false, "only list what would be sent")
	f.Float64Var(&perSecond, "rate", 10, "deliveries per second, at most 1000")
	_ = cmd.MarkFlagRequired("subscription")
	_ = cmd.MarkFlagRequired("since")
	return cmd
}
