package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/robotlab/webhookd/admin/client"
)

// replayPoll is how often webhookctl asks for a replay's progress.
const replayPoll = 200 * time.Millisecond

// followReplay polls the replay until it is done, showing its progress on
// stderr: one line rewritten in place on a terminal, otherwise a line a
// second (and the last). It returns the replay's last state.
func (a *app) followReplay(ctx context.Context, c *client.Client, rp client.Replay) (client.Replay, error) {
	term := isTerminal(a.stderr)
	var lastLine time.Time
	var last string
	show := func(final bool) {
		line := fmt.Sprintf("replayed %d/%d (skipped %d, failed %d)", rp.Sent, rp.Planned, rp.Skipped, rp.Failed)
		switch {
		case term:
			fmt.Fprintf(a.stderr, "\r%s", line)
			if final {
				fmt.Fprintln(a.stderr)
			}
		case line != last && (final || time.Since(lastLine) >= time.Second):
			fmt.Fprintln(a.stderr, line)
			last, lastLine = line, time.Now()
		}
	}
	tick := time.NewTicker(replayPoll)
	defer tick.Stop()
	for !rp.Done {
		show(false)
		select {
		case <-ctx.Done():
			if term {
				fmt.Fprintln(a.stderr)
			}
			return rp, fmt.Errorf("stopped following replay %s, which goes on in replica %s (GET /v1/replays/%s): %w", rp.ID, rp.Replica, rp.ID, ctx.Err())
		case <-tick.C:
		}
		next, err := c.GetReplay(ctx, rp.ID)
		if err != nil {
			return rp, fmt.Errorf("follow replay %s: %w", rp.ID, err)
		}
		rp = next
	}
	show(true)
	return rp, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
