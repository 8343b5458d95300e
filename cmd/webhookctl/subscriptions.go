package main

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

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
		a.subRotate(), a.subExpireSecret(), a.subPing(), a.subTry())
	return group(cmd)
}

func (a *app) printSubscription(s client.Subscription) error {
	return a.print(s, func(w *tabwriter.Writer) {
		row(w, "ID", s.ID)
		row(w, "URL", orDash(s.URL))
		row(w, "EVENTS", strings.Join(s.Events, ","))
		row(w, "DESCRIPTION", orDash(s.Description))
		row(w, "TIMEOUT", s.Timeout)
		row(w, "MAX IN FLIGHT", maxInFlight(s))
		row(w, "RETRY POLICY", orDefault(s.RetryPolicy))
		row(w, "FILTER", orDash(s.Filter))
		row(w, "TRANSFORM", orDash(s.Transform))
		row(w, "ORDERING KEY", orDash(s.OrderingKey))
		row(w, "HEADERS", headerList(s.Headers))
		row(w, "LABELS", labelList(s.Labels))
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
		if o := s.OrderedKeys; o != nil {
			row(w, "KEYS WAITING", fmt.Sprintf("%d   (on the replica asked)", o.Waiting))
			for _, k := range o.Longest {
				row(w, "  KEY "+k.Key, orderedHead(k))
			}
		}
		row(w, "CREATED", ts(s.CreatedAt))
		row(w, "UPDATED", ts(s.UpdatedAt))
		if s.Secret != "" {
			row(w, "SECRET", s.Secret+"   (shown only now: store it with the receiver)")
		}
		switch {
		case !s.PreviousSecretExpiresAt.IsZero():
			row(w, "GRACE ENDS", ts(s.PreviousSecretExpiresAt)+"   (the previous secret signs too until then; end it early: expire-secret)")
		case s.Secret != "" && !s.CreatedAt.Equal(s.UpdatedAt):
			row(w, "GRACE ENDS", "now   (only the new secret signs)")
		}
	})
}

// orderedHead describes a key's backlog by its head delivery.
func orderedHead(k client.OrderedKey) string {
	state := "waiting"
	switch {
	case k.HeadRunning:
		state = "running"
	case !k.HeadDue.IsZero():
		state = "due " + ts(k.HeadDue)
	}
	return fmt.Sprintf("%d deliveries; head %s (event %s), attempt %d, %s", k.Deliveries, k.HeadID, k.HeadEventID, k.HeadAttempt, state)
}

// status is "active", "paused", "disabled (reason)", or for the ephemeral
// subscription of a `webhookctl listen` "listen (expires TIME)".
func status(s client.Subscription) string {
	if s.Listen {
		return "listen (expires " + ts(s.ExpiresAt) + ")"
	}
	if st := s.State(); st != "disabled" {
		return st
	}
	return "disabled (" + s.DisabledReason + ")"
}

func orDefault(v string) string {
	if v == "" {
		return "default"
	}
	return v
}

// headerList shows the custom headers' names with their redacted values.
func headerList(h map[string]string) string {
	if len(h) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(h))
	for _, name := range slices.Sorted(maps.Keys(h)) {
		parts = append(parts, name+": "+h[name])
	}
	return strings.Join(parts, ", ")
}

// parseHeaders reads --header values, "Name: value" each.
func parseHeaders(vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(vals))
	for _, v := range vals {
		name, value, ok := strings.Cut(v, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			return nil, fmt.Errorf("--header %q: want 'Name: value'", name)
		}
		out[name] = value
	}
	return out, nil
}

// retryPolicyFlag is the value of --retry-policy: "default" (or empty)
// goes back to the server's default.
func retryPolicyFlag(v string) string {
	if strings.EqualFold(strings.TrimSpace(v), "default") {
		return ""
	}
	return v
}

const (
	headerUsage    = "custom header sent with every request, 'Name: value' (repeatable; values are never shown again)"
	filterUsage    = "CEL expression over event, id, timestamp and data that gives a bool: only matching events are delivered"
	transformUsage = "CEL expression that gives an object: sent as the body instead of the envelope"
	keyUsage       = "CEL expression that gives a string, such as data.robot_id: deliveries with the same key start one at a time, in event order"
	policyUsage    = "retry schedule of this subscription: a list (5s,1m,10m) or exp:INITIAL:MAX:RETRIES[:JITTER]; 'default' for the server's"
)

func maxInFlight(s client.Subscription) string {
	if s.MaxInFlight == 0 {
		return "default"
	}
	return strconv.Itoa(s.MaxInFlight)
}

func (a *app) subCreate() *cobra.Command {
	var in client.SubscriptionInput
	var events string
	var headers, labels []string
	cmd := &cobra.Command{
		Use:   "create --url URL --events a,b",
		Short: "Create a subscription and print its id and secret",
		Example: `  webhookctl subscriptions create --url https://example.com/hook --events task.completed,task.failed
  webhookctl subscriptions create --url https://example.com/robots --events 'robot.>' --timeout 10s --description "fleet board"
  webhookctl subscriptions create --url https://slow.example.com/hook --events 'task.*' --max-in-flight 4
  webhookctl subscriptions create --url https://api.example.com/hook --events 'alert.*' --header 'X-Api-Key: abc' --retry-policy exp:5s:1h:12:0.2
  webhookctl subscriptions create --url https://example.com/hook --events 'task.*' --label owner=team-a --label env=prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			in.Events = splitList(events)
			if in.Headers, err = parseHeaders(headers); err != nil {
				return err
			}
			if in.Labels, err = parseLabels(labels); err != nil {
				return err
			}
			in.RetryPolicy = retryPolicyFlag(in.RetryPolicy)
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
	cmd.Flags().StringArrayVar(&headers, "header", nil, headerUsage)
	cmd.Flags().StringVar(&in.RetryPolicy, "retry-policy", "", policyUsage+" (default: the server's)")
	cmd.Flags().StringVar(&in.Filter, "filter", "", filterUsage)
	cmd.Flags().StringVar(&in.Transform, "transform", "", transformUsage)
	cmd.Flags().StringVar(&in.OrderingKey, "ordering-key", "", keyUsage)
	cmd.Flags().StringArrayVar(&labels, "label", nil, labelUsage)
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
				row(w, append(append([]any{"ID", "URL", "EVENTS", "STATUS"}, healthColumns...), "OWNER", "CREATED")...)
				for _, s := range subs {
					row(w, append(append([]any{s.ID, orDash(s.URL), strings.Join(s.Events, ","), status(s)}, healthCells(s)...), orDash(s.Labels["owner"]), ts(s.CreatedAt))...)
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
	var url, events, description, timeout, policy, filter, transform, key string
	var inFlight int
	var headers, removeHeaders, labels, removeLabels []string
	cmd := &cobra.Command{
		Use:   "update ID [--url URL] [--events a,b] [--description D] [--timeout 10s] [--max-in-flight N] [--header 'N: v'] [--remove-header N] [--retry-policy P] [--filter E] [--transform E] [--ordering-key E] [--label k=v] [--remove-label k]",
		Short: "Change the given fields of a subscription",
		Example: `  webhookctl subscriptions update 6f1c… --events 'task.*' --timeout 5s
  webhookctl subscriptions update 6f1c… --max-in-flight 0   # back to the server's default
  webhookctl subscriptions update 6f1c… --header 'X-Api-Key: new' --remove-header X-Old-Key
  webhookctl subscriptions update 6f1c… --retry-policy 10s,1m,10m,1h
  webhookctl subscriptions update 6f1c… --retry-policy default
  webhookctl subscriptions update 6f1c… --filter 'data.severity == "critical"'
  webhookctl subscriptions update 6f1c… --filter ''   # deliver every event again
  webhookctl subscriptions update 6f1c… --label owner=team-b --remove-label env`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireAChange(cmd); err != nil {
				return err
			}
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
			set, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			for name, v := range set {
				if p.Headers == nil {
					p.Headers = map[string]*string{}
				}
				p.Headers[name] = &v
			}
			for _, name := range removeHeaders {
				if _, both := set[name]; both {
					return fmt.Errorf("--header and --remove-header both name %q", name)
				}
				if p.Headers == nil {
					p.Headers = map[string]*string{}
				}
				p.Headers[strings.TrimSpace(name)] = nil
			}
			if f.Changed("retry-policy") {
				v := retryPolicyFlag(policy)
				p.RetryPolicy = &v
			}
			if f.Changed("filter") {
				p.Filter = &filter
			}
			if f.Changed("transform") {
				p.Transform = &transform
			}
			if f.Changed("ordering-key") {
				p.OrderingKey = &key
			}
			if p.Labels, err = labelPatch(labels, removeLabels); err != nil {
				return err
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
	cmd.Flags().StringArrayVar(&headers, "header", nil, "set a "+headerUsage)
	cmd.Flags().StringArrayVar(&removeHeaders, "remove-header", nil, "remove the custom header of this name (repeatable)")
	cmd.Flags().StringVar(&policy, "retry-policy", "", policyUsage)
	cmd.Flags().StringVar(&filter, "filter", "", filterUsage+" ('' clears it)")
	cmd.Flags().StringVar(&transform, "transform", "", transformUsage+" ('' clears it)")
	cmd.Flags().StringVar(&key, "ordering-key", "", keyUsage+" ('' clears it)")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "set a "+labelUsage)
	cmd.Flags().StringArrayVar(&removeLabels, "remove-label", nil, "remove the label with this key (repeatable)")
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

func (a *app) subRotate() *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "rotate-secret ID [--grace DURATION]",
		Short: "Issue a new secret; the old one keeps signing until the grace period ends (printed)",
		Long: `Issue a new secret and print it (it is shown only now). During the grace
period every delivery carries one signature per live secret, so receivers
holding the old or the new secret both verify; the output says when it ends.
--grace sets it (default: the server's --secret-grace); 0 ends it at once.
End it early with expire-secret.`,
		Example: `  webhookctl subscriptions rotate-secret 6f1c…
  webhookctl subscriptions rotate-secret 6f1c… --grace 2h
  webhookctl subscriptions rotate-secret 6f1c… --grace 0   # only the new secret signs`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var g *time.Duration
			if cmd.Flags().Changed("grace") {
				if grace < 0 {
					return fmt.Errorf("--grace %s: want 0 or more", grace)
				}
				g = &grace
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			s, err := c.RotateSecret(cmd.Context(), args[0], g)
			if err != nil {
				return err
			}
			return a.printSubscription(s)
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 0, "how long the previous secret keeps signing, 0 to 720h (default: the server's --secret-grace)")
	return cmd
}

func (a *app) subExpireSecret() *cobra.Command {
	return a.subAction("expire-secret", "End a rotation's grace period now: only the current secret signs",
		"  webhookctl subscriptions expire-secret 6f1c…")
}

func (a *app) subPing() *cobra.Command {
	return &cobra.Command{
		Use:   "ping ID",
		Short: "Send a signed webhook.ping test event to this endpoint only and print the outcome",
		Long: `Send one webhook.ping event to the subscription's endpoint, signed like any
delivery, with its custom headers and timeout, through the same outbound
guard. It is sent once and never retried, whatever the subscription's state,
and recorded in the delivery history as a test. The command prints the
status, duration and start of the response, and exits 1 when the endpoint
did not answer 2xx.`,
		Example: "  webhookctl subscriptions ping 6f1c…",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			p, err := c.Ping(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			err = a.print(p, func(w *tabwriter.Writer) {
				outcome := p.Outcome
				if p.Reason != "" && p.Reason != p.Outcome {
					outcome += " (" + p.Reason + ")"
				}
				row(w, "OUTCOME", outcome)
				row(w, "STATUS", orDash(statusCode(p.StatusCode)))
				row(w, "DURATION", fmt.Sprintf("%dms", p.DurationMS)) // as in the attempts table: 0ms, not 0s
				row(w, "RESPONSE", orDash(snippet(p.Response, 200)))
				if p.Error != "" {
					row(w, "ERROR", snippet(p.Error, 200))
				}
				row(w, "URL", p.URL)
				row(w, "DELIVERY", p.DeliveryID+"   (webhookctl deliveries get "+p.DeliveryID+")")
			})
			if err != nil {
				return err
			}
			if p.Outcome != "succeeded" {
				return fmt.Errorf("ping of %s failed: %s", p.SubscriptionID, p.Reason)
			}
			return nil
		},
	}
}

func statusCode(c int) string {
	if c == 0 {
		return ""
	}
	return strconv.Itoa(c)
}

// snippet is s on one line, cut to n runes.
func snippet(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
