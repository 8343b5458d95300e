package main

import (
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/robotlab/webhookd/admin/client"
)

func (a *app) subscriptionsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "subscriptions",
		Aliases: []string{"subscription", "subs", "sub"},
		Short:   "Create, list, change and delete subscriptions",
		Example: `  webhookctl subscriptions create --url https://example.com/hook --events 'task.*'
  webhookctl subscriptions list
  webhookctl subscriptions pause 6f1c…`,
	}
	cmd.AddCommand(a.subCreate(), a.subList(), a.subGet(), a.subUpdate(), a.subDelete(),
		a.subAction("pause", "Stop deliveries; events that arrive meanwhile are kept and sent on resume",
			"  webhookctl subscriptions pause 6f1c…"),
		a.subAction("resume", "Start deliveries again (also after the dispatcher disabled it) and send the ones held, oldest first",
			"  webhookctl subscriptions resume 6f1c…"),
		a.subAction("rotate-secret", "Issue a new secret; the old one keeps signing during the grace period",
			"  webhookctl subscriptions rotate-secret 6f1c…"))
	return cmd
}

func (a *app) printSubscription(s client.Subscription) error {
	return a.print(s, func(w *tabwriter.Writer) {
		row(w, "ID", s.ID)
		row(w, "URL", s.URL)
		row(w, "EVENTS", strings.Join(s.Events, ","))
		row(w, "DESCRIPTION", orDash(s.Description))
		row(w, "TIMEOUT", s.Timeout)
		row(w, "MAX IN FLIGHT", maxInFlight(s))
		row(w, "STATUS", status(s))
		if !s.DisabledAt.IsZero() {
			row(w, "DISABLED AT", ts(s.DisabledAt))
		}
		if !s.FailingSince.IsZero() {
			row(w, "FAILING SINCE", ts(s.FailingSince))
		}
		if h := s.Health; h != nil {
			breaker := h.Breaker
			if !h.OpenUntil.IsZero() {
				breaker += " until " + ts(h.OpenUntil)
			}
			row(w, "BREAKER", breaker)
			row(w, "FAILURES IN A ROW", h.ConsecutiveFailures)
		}
		row(w, "CREATED", ts(s.CreatedAt))
		row(w, "UPDATED", ts(s.UpdatedAt))
		if s.Secret != "" {
			row(w, "SECRET", s.Secret+"   (shown only now: store it with the receiver)")
		}
	})
}

// status is "active", "paused" or "disabled (reason)".
func status(s client.Subscription) string {
	if st := s.State(); st != "disabled" {
		return st
	}
	return "disabled (" + s.DisabledReason + ")"
}

func maxInFlight(s client.Subscription) string {
	if s.MaxInFlight == 0 {
		return "default"
	}
	return strconv.Itoa(s.MaxInFlight)
}

func (a *app) subCreate() *cobra.Command {
	var in client.SubscriptionInput
	var events string
	cmd := &cobra.Command{
		Use:   "create --url URL --events a,b",
		Short: "Create a subscription and print its id and secret",
		Example: `  webhookctl subscriptions create --url https://example.com/hook --events task.completed,task.failed
  webhookctl subscriptions create --url https://example.com/robots --events 'robot.>' --timeout 10s --description "fleet board"
  webhookctl subscriptions create --url https://slow.example.com/hook --events 'task.*' --max-in-flight 4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			in.Events = splitList(events)
			s, err := c.CreateSubscription(cmd.Context(), in)
			if err != nil {
				return err
			}
			return a.printSubscription(s)
		},
	}
	cmd.Flags().StringVar(&in.URL, "url", "", "endpoint to POST events to (required)")
	cmd.Flags().StringVar(&events, "events", "", "event types or patterns, comma-separated (required)")
	cmd.Flags().StringVar(&in.Description, "description", "", "free text")
	cmd.Flags().StringVar(&in.Timeout, "timeout", "", "timeout of one attempt, e.g. 10s (default: the server's)")
	cmd.Flags().IntVar(&in.MaxInFlight, "max-in-flight", 0, "attempts in flight to this endpoint at most, 1 to 1000 (default 0: the server's)")
	_ = cmd.MarkFlagRequired("url")
	_ = cmd.MarkFlagRequired("events")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (a *app) subList() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List subscriptions (secrets are never shown)",
		Example: "  webhookctl subscriptions list\n  webhookctl -o json subscriptions list | jq -r '.items[].id'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			subs, err := c.ListSubscriptions(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(client.List[client.Subscription]{Items: subs}, func(w *tabwriter.Writer) {
				row(w, append(append([]any{"ID", "URL", "EVENTS", "STATUS"}, healthColumns...), "CREATED")...)
				for _, s := range subs {
					row(w, append(append([]any{s.ID, s.URL, strings.Join(s.Events, ","), status(s)}, healthCells(s)...), ts(s.CreatedAt))...)
				}
			})
		},
	}
}

func (a *app) subGet() *cobra.Command {
	return &cobra.Command{
		Use:     "get ID",
		Short:   "Show one subscription",
		Example: "  webhookctl subscriptions get 6f1c…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.GetSubscription(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printSubscription(s)
		},
	}
}

func (a *app) subUpdate() *cobra.Command {
	var url, events, description, timeout string
	var inFlight int
	cmd := &cobra.Command{
		Use:     "update ID [--url URL] [--events a,b] [--description D] [--timeout 10s] [--max-in-flight N]",
		Short:   "Change the given fields of a subscription",
		Example: "  webhookctl subscriptions update 6f1c… --events 'task.*' --timeout 5s\n  webhookctl subscriptions update 6f1c… --max-in-flight 0   # back to the server's default",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var p client.SubscriptionPatch
			f := cmd.Flags()
			if f.Changed("url") {
				p.URL = &url
			}
			if f.Changed("events") {
				list := splitList(events)
				p.Events = &list
			}
			if f.Changed("description") {
				p.Description = &description
			}
			if f.Changed("timeout") {
				p.Timeout = &timeout
			}
			if f.Changed("max-in-flight") {
				p.MaxInFlight = &inFlight
			}
			s, err := c.UpdateSubscription(cmd.Context(), args[0], p)
			if err != nil {
				return err
			}
			return a.printSubscription(s)
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "new endpoint")
	cmd.Flags().StringVar(&events, "events", "", "new event types or patterns, comma-separated")
	cmd.Flags().StringVar(&description, "description", "", "new description")
	cmd.Flags().StringVar(&timeout, "timeout", "", "new timeout of one attempt")
	cmd.Flags().IntVar(&inFlight, "max-in-flight", 0, "new cap on attempts in flight, 1 to 1000 (0: the server's default)")
	return cmd
}

func (a *app) subDelete() *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID",
		Short:   "Delete a subscription; its queued deliveries are cancelled",
		Example: "  webhookctl subscriptions delete 6f1c…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.DeleteSubscription(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.output == "json" {
				return a.print(map[string]string{"deleted": args[0]}, nil)
			}
			_, err = a.stdout.Write([]byte("deleted " + args[0] + "\n"))
			return err
		},
	}
}

func (a *app) subAction(action, short, example string) *cobra.Command {
	return &cobra.Command{
		Use:     action + " ID",
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.SubscriptionAction(cmd.Context(), args[0], action)
			if err != nil {
				return err
			}
			return a.printSubscription(s)
		},
	}
}
