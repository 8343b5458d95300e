package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/robotlab/webhookd/admin/client"
)

// listenOptions are the flags of listen.
type listenOptions struct {
	events, filter, forwardTo string
	forwardTimeout            time.Duration
}

func (a *app) listenCommand() *cobra.Command {
	var o listenOptions
	cmd := &cobra.Command{
		Use:   "listen --events PATTERNS [--filter EXPR] [--forward-to URL]",
		Short: "Receive live deliveries here, or forward them to a local receiver, without a public URL",
		Long: `listen creates an ephemeral subscription and streams its deliveries from the
admin API (Server-Sent Events, with the same token): webhookd never connects
to this machine. Each delivery comes signed as a real one, with the ephemeral
subscription's secret, which listen prints at start.

Without --forward-to each event is printed (time, type, event id, body). With
it, the exact body and headers are POSTed to the local URL and its answer is
printed. A listener that cannot keep up is told "dropped N". Ctrl-C deletes
the subscription; if listen is killed or its connection drops, webhookd
deletes it after its grace period (--listen-grace, under a minute).`,
		Example: `  webhookctl listen --events 'task.*' --forward-to http://localhost:3000/webhooks
  webhookctl listen --events alert.triggered
  webhookctl -o json listen --events '>'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.listen(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.events, "events", "", "event types or patterns, comma-separated (required)")
	f.StringVar(&o.filter, "filter", "", "CEL expression: only events for which it is true are streamed")
	f.StringVar(&o.forwardTo, "forward-to", "", "local URL to POST each delivery to, e.g. http://localhost:3000/webhooks")
	f.DurationVar(&o.forwardTimeout, "forward-timeout", 10*time.Second, "how long a POST to --forward-to may take")
	_ = cmd.MarkFlagRequired("events")
	return cmd
}

// listenGiveUp is how long listen tries to reconnect a broken stream: past
// it the server has deleted the subscription (its grace period is shorter).
const listenGiveUp = 90 * time.Second

// listen runs the command until ctx is done, then deletes the subscription.
func (a *app) listen(ctx context.Context, o listenOptions) error {
	if o.forwardTo != "" {
		if u, err := url.Parse(o.forwardTo); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--forward-to %q: want an http(s) URL such as http://localhost:3000/webhooks", o.forwardTo)
		}
	}
	if o.forwardTimeout <= 0 {
		return fmt.Errorf("--forward-timeout %s: want a positive duration", o.forwardTimeout)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	desc := "webhookctl listen"
	if host, err := os.Hostname(); err == nil {
		desc += " on " + host
	}
	sub, err := c.CreateListener(ctx, client.ListenerInput{Events: splitList(o.events), Filter: o.filter, Description: desc})
	if err != nil {
		return err
	}
	defer func() {
		// Ctrl-C: delete it now rather than after its grace period.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := c.DeleteSubscription(dctx, sub.ID); err != nil && !errors.Is(err, client.ErrNotFound) {
			fmt.Fprintf(a.stderr, "could not delete listen subscription %s (webhookd deletes it after its grace period): %s\n", sub.ID, oneLine(err))
		}
	}()
	if a.output == "json" {
		if err := json.NewEncoder(a.stdout).Encode(sub); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(a.stdout, "Listening for %s (listen subscription %s).\n", strings.Join(sub.Events, ","), sub.ID)
		fmt.Fprintf(a.stdout, "Signing secret: %s\n", sub.Secret)
	}
	fw := &forwarder{a: a, to: o.forwardTo, http: &http.Client{
		Timeout:       o.forwardTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	h := client.ListenHandler{
		Ready: func(client.ListenReady) {
			if a.output != "json" {
				fmt.Fprintln(a.stdout, "Ready. Press Ctrl-C to stop.")
			}
		},
		Event: func(ev client.ListenEvent) error { return fw.handle(ctx, ev) },
		Dropped: func(n int64) {
			fmt.Fprintf(a.stderr, "dropped %d deliveries: this listener did not keep up\n", n)
		},
	}
	var brokenSince time.Time
	for {
		err := c.Listen(ctx, sub.ID, h)
		var apiErr *client.Error
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, client.ErrListenerGone), errors.Is(err, client.ErrNotFound):
			return fmt.Errorf("listen subscription %s was deleted (it expired, or someone deleted it); run listen again", sub.ID)
		case errors.As(err, &apiErr) && apiErr.Status != http.StatusServiceUnavailable:
			return err
		}
		if brokenSince.IsZero() {
			brokenSince = time.Now()
		} else if time.Since(brokenSince) > listenGiveUp {
			return fmt.Errorf("stream lost for %s: %w", listenGiveUp, err)
		}
		fmt.Fprintf(a.stderr, "stream lost (%s); reconnecting\n", oneLine(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		h.Ready = func(client.ListenReady) {
			brokenSince = time.Time{}
			fmt.Fprintln(a.stderr, "reconnected")
		}
	}
}

// forwarder prints each delivery, or POSTs it to a local receiver.
type forwarder struct {
	a    *app
	to   string
	http *http.Client
}

func (f *forwarder) handle(ctx context.Context, ev client.ListenEvent) error {
	a := f.a
	if a.output == "json" && f.to == "" {
		return json.NewEncoder(a.stdout).Encode(ev)
	}
	at := ts(time.Now())
	if f.to == "" {
		fmt.Fprintf(a.stdout, "%s  %s  %s  %s\n", at, ev.Event, ev.EventID, bytes.TrimSpace(ev.Body))
		return nil
	}
	status, took, err := f.post(ctx, ev)
	switch {
	case ctx.Err() != nil:
		return nil // stopping
	case err != nil:
		fmt.Fprintf(a.stdout, "%s  %s  %s  -> POST %s: %s\n", at, ev.Event, ev.EventID, f.to, oneLine(err))
	default:
		fmt.Fprintf(a.stdout, "%s  %s  %s  -> POST %s: %d %s (%d ms)\n", at, ev.Event, ev.EventID, f.to,
			status, http.StatusText(status), took.Milliseconds())
	}
	return nil
}

// post sends ev's exact body and headers to the local receiver.
func (f *forwarder) post(ctx context.Context, ev client.ListenEvent) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.to, bytes.NewReader(ev.Body))
	if err != nil {
		return 0, 0, err
	}
	for k, v := range ev.Headers {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "webhookctl-listen")
	start := time.Now()
	resp, err := f.http.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, time.Since(start), nil
}
