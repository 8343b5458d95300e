package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/robotlab/webhookd/admin/client"
)

func (a *app) eventsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use: "events", Aliases: []string{"event"}, Short: "Publish events and list event types",
		Example: `  webhookctl events types
  webhookctl events publish task.completed --data '{"task_id":"T123"}'`,
	}
	var data, id string
	publish := &cobra.Command{
		Use:   "publish TYPE --data JSON",
		Short: "Publish an event through the EVENTS stream, as a robot would",
		Example: `  webhookctl events publish task.completed --data '{"task_id":"T123","robot_id":"R001"}'
  webhookctl events publish alert.triggered --data '{"level":"high"}' --id alert-42`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if !json.Valid([]byte(data)) {
				return fmt.Errorf("--data: not valid JSON")
			}
			p, err := c.Publish(cmd.Context(), client.PublishRequest{Event: args[0], Data: json.RawMessage(data), ID: id})
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
	publish.Flags().StringVar(&data, "data", "", "the event's data, a JSON object (required)")
	publish.Flags().StringVar(&id, "id", "", "event id; publishing the same id again is deduplicated")
	_ = publish.MarkFlagRequired("data")

	types := &cobra.Command{
		Use:     "types",
		Short:   "List the event types subscriptions may name",
		Example: "  webhookctl events types",
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
			return a.print(client.List[string]{Items: ts}, func(w *tabwriter.Writer) {
				for _, t := range ts {
					row(w, t)
				}
			})
		},
	}
	cmd.AddCommand(publish, types)
	return cmd
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
