package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/robotlab/webhookd/admin/client"
)

func (a *app) eventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use: "events", Aliases: []string{"event"}, Short: "Publish events, trigger samples, list event types, and read the message log",
		Example: `  webhookctl events types
  webhookctl events publish task.completed --data '{"task_id":"T123"}'
  webhookctl events trigger task.completed
  webhookctl events list --since 1h
  webhookctl events get evt-T124-failed`,
	}
	var data, id string
	publish := &cobra.Command{
		Use:   "publish TYPE --data JSON|@FILE|-",
		Short: "Publish an event through the EVENTS stream, as a robot would",
		Example: `  webhookctl events publish task.completed --data '{"task_id":"T123","robot_id":"R001"}'
  webhookctl events publish alert.triggered --data '{"level":"high"}' --id alert-42
  webhookctl events publish task.completed --data @report.json
  produce-report | webhookctl events publish task.completed --data -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := a.readData(data)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.Publish(cmd.Context(), client.PublishRequest{Event: args[0], Data: body, ID: id})
			if err != nil {
				return err
			}
			return a.print(p, func(w *tabwriter.Writer) {
				row(w, "ID", p.ID)
				row(w, "EVENT", p.Event)
				row(w, "SEQUENCE", p.Sequence)
				if p.Duplicate {
					row(w, "DUPLICATE", "yes: an event with this id was already published")
				}
			})
		},
	}
	publish.Flags().StringVar(&data, "data", "", "the event's data, a JSON object: inline, @FILE to read a file, or - to read stdin (required)")
	publish.Flags().StringVar(&id, "id", "", "event id; publishing the same id again is deduplicated")
	_ = publish.MarkFlagRequired("data")

	types := &cobra.Command{
		Use:     "types",
		Short:   "List the event types subscriptions may name, and which have a schema",
		Example: "  webhookctl events types\n  webhookctl -o json events types | jq '.items[] | select(.type==\"task.completed\") | .schema'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ts, err := c.EventTypes(cmd.Context())
			if err != nil {
				return err
			}
			names := make([]string, len(ts))
			for i, t := range ts {
				names[i] = t.Type
			}
			return a.print(client.EventTypeList{Items: names, Types: ts}, func(w *tabwriter.Writer) {
				row(w, "TYPE", "SCHEMA")
				for _, t := range ts {
					row(w, t.Type, yesNo(t.Schema != nil))
				}
			})
		},
	}
	var sample string
	trigger := &cobra.Command{
		Use:   "trigger TYPE [--data JSON|@FILE|-]",
		Short: "Publish a sample event of TYPE: its schema's example, else the built-in sample",
		Long: `trigger publishes a sample event of TYPE through the admin API, as
"events publish" does. The data is --data when given, else the sample
GET /v1/event-types shows for the type: the first of its schema's examples
(webhookd --event-schemas), else webhookd's built-in sample of a catalog
type.`,
		Example: `  webhookctl events trigger task.completed
  webhookctl events trigger task.completed --data '{"task_id":"T9","robot_id":"R009"}'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var body json.RawMessage
			if sample != "" {
				if body, err = a.readData(sample); err != nil {
					return err
				}
			} else if body, err = sampleOf(cmd.Context(), c, args[0]); err != nil {
				return err
			}
			p, err := c.Publish(cmd.Context(), client.PublishRequest{Event: args[0], Data: body})
			if err != nil {
				return err
			}
			return a.print(p, func(w *tabwriter.Writer) {
				row(w, "ID", p.ID)
				row(w, "EVENT", p.Event)
				row(w, "SEQUENCE", p.Sequence)
			})
		},
	}
	trigger.Flags().StringVar(&sample, "data", "", "the event's data instead of the sample: inline, @FILE or - (stdin)")
	cmd.AddCommand(publish, trigger, types, a.evList(), a.evGet())
	return group(cmd)
}

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "status",
		Short:   "Show streams, consumer lag and replicas",
		Example: "  webhookctl status\n  webhookctl -o json status | jq '.consumers[] | select(.name==\"workers\") | .pending'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(st, func(w *tabwriter.Writer) {
				row(w, "REPLICA", st.Replica)
				row(w, "REPLICAS SEEN", fmt.Sprint(st.Replicas))
				row(w, "")
				row(w, "STREAM", "MESSAGES", "BYTES")
				for _, s := range st.Streams {
					row(w, s.Name, s.Messages, s.Bytes)
				}
				row(w, "")
				row(w, "CONSUMER", "PENDING", "IN FLIGHT", "REDELIVERED")
				for _, c := range st.Consumers {
					row(w, c.Stream+"/"+c.Name, c.Pending, c.InFlight, c.Redelivered)
				}
				row(w, "")
				row(w, "SINCE START", "ROUTED", "NO SUBSCRIBER", "REJECTED", "JOBS", "ATTEMPTS", "DEFERRED", "HELD")
				c := st.Counters
				row(w, "this replica", c["routed"], c["no_subscriber"], c["rejected"], c["jobs"], c["attempts"], c["deferred"], c["held"])
				if len(st.Endpoints) > 0 {
					row(w, "")
					row(w, "ENDPOINT", "BREAKER", "FAILURES IN A ROW", "IN FLIGHT", "LAST")
					for _, e := range st.Endpoints {
						last := orDash(e.LastReason)
						if e.LastStatusCode != 0 {
							last = fmt.Sprint(e.LastStatusCode)
						}
						row(w, e.SubscriptionID, e.Breaker, e.ConsecutiveFailures, e.InFlight, last)
					}
				}
			})
		},
	}
}

// sampleOf returns the sample data the server shows for eventType.
func sampleOf(ctx context.Context, c *client.Client, eventType string) (json.RawMessage, error) {
	types, err := c.EventTypes(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range types {
		if t.Type != eventType {
			continue
		}
		if t.Sample == nil {
			return nil, fmt.Errorf("event type %q has no sample: give --data, or add \"examples\" to its schema", eventType)
		}
		return t.Sample, nil
	}
	return nil, fmt.Errorf("event type %q is not in the catalog (webhookctl events types)", eventType)
}

// maxDataRead bounds what --data @FILE and --data - read: far above any
// server's --max-event-size, so the server's own limit is the one reported.
const maxDataRead = 64 << 20

// readData returns the event data --data names: the argument itself, the
// contents of a file (@FILE) or the standard input (-), checked to be JSON.
func (a *app) readData(arg string) (json.RawMessage, error) {
	from, r := "", io.Reader(nil)
	switch {
	case arg == "-":
		from, r = "- (stdin)", a.stdin
	case strings.HasPrefix(arg, "@"):
		name := arg[1:]
		if name == "" {
			return nil, fmt.Errorf("--data @: want a file name after @")
		}
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		}
		defer f.Close()
		from, r = arg, f
	default:
		if !json.Valid([]byte(arg)) {
			return nil, fmt.Errorf("--data: not valid JSON")
		}
		return json.RawMessage(arg), nil
	}
	b, err := io.ReadAll(io.LimitReader(r, maxDataRead+1))
	if err != nil {
		return nil, fmt.Errorf("--data %s: %w", from, err)
	}
	switch {
	case len(b) > maxDataRead:
		return nil, fmt.Errorf("--data %s: larger than %d MiB", from, maxDataRead>>20)
	case len(bytes.TrimSpace(b)) == 0:
		return nil, fmt.Errorf("--data %s: empty", from)
	case !json.Valid(b):
		return nil, fmt.Errorf("--data %s: not valid JSON", from)
	}
	return json.RawMessage(b), nil
}
