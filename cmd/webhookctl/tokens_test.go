package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// TestCLITeamTokens creates two team tokens with the operator's token: each
// is printed once and never listed; with its token each team creates,
// lists and gets its own subscriptions and deliveries only, and cannot
// get, change, rotate or delete the other's (both ways); the operator
// sees both; a deleted token is refused.
func TestCLITeamTokens(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	rcv := newSwitchable(t, http.StatusOK)

	tokens := map[string]string{}
	for _, team := range []string{"team-a", "team-b"} {
		out, errOut, code := d.ctl("tokens", "create", "--name", team+"-cli", "--owner", team)
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, "shown only now")
		var tok string
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "TOKEN" {
				tok = f[1]
			}
		}
		require.True(t, strings.HasPrefix(tok, "wht."+team+"-cli."), out)
		tokens[team] = tok
	}
	list, errOut, code := d.ctl("tokens", "list")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^team-a-cli\s+team-a\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`, list)
	for _, tok := range tokens {
		require.NotContains(t, list, tok, "a token is shown once")
	}

	as := func(team string, args ...string) (string, string, int) {
		return d.ctl(append([]string{"--token", tokens[team]}, args...)...)
	}
	subs := map[string]client.Subscription{}
	for _, team := range []string{"team-a", "team-b"} {
		out, errOut, code := as(team, "-o", "json", "subscriptions", "create", "--url", rcv.URL, "--events", "task.completed", "--label", "env=prod")
		require.Equal(t, 0, code, errOut)
		var s client.Subscription
		require.NoError(t, json.Unmarshal([]byte(out), &s))
		require.Equal(t, map[string]string{"env": "prod", "owner": team}, s.Labels)
		subs[team] = s
	}
	_, errOut, code = as("team-a", "subscriptions", "create", "--url", rcv.URL, "--events", "task.completed", "--label", "owner=team-b")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "its own team only")

	_, errOut, code = d.ctl("events", "publish", "task.completed", "--data", `{"task_id":"T1"}`)
	require.Equal(t, 0, code, errOut)
	waitFor(t, 15*time.Second, func() bool {
		var page client.List[client.Delivery]
		d.ctlJSON(t, &page, "deliveries", "list", "--status", "succeeded")
		return len(page.Items) == 2
	}, "both deliveries")

	for me, other := range map[string]string{"team-a": "team-b", "team-b": "team-a"} {
		out, errOut, code := as(me, "subscriptions", "list")
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, subs[me].ID)
		require.Contains(t, out, me, "the OWNER column")
		require.NotContains(t, out, subs[other].ID)
		out, errOut, code = as(me, "subscriptions", "get", subs[me].ID)
		require.Equal(t, 0, code, errOut)
		require.Regexp(t, `LABELS\s+env=prod,owner=`+me, out)

		out, errOut, code = as(me, "-o", "json", "deliveries", "list")
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, subs[me].ID)
		require.NotContains(t, out, subs[other].ID)

		for _, args := range [][]string{
			{"subscriptions", "get", subs[other].ID},
			{"subscriptions", "update", subs[other].ID, "--description", "mine now"},
			{"subscriptions", "rotate-secret", subs[other].ID},
			{"subscriptions", "pause", subs[other].ID},
			{"subscriptions", "delete", subs[other].ID},
		} {
			out, errOut, code := as(me, args...)
			require.Equal(t, 1, code, "%v: %s", args, out)
			require.Contains(t, errOut, "not found", "%v", args)
			require.NotContains(t, out+errOut, "whsec_")
		}
		_, errOut, code = as(me, "subscriptions", "update", subs[me].ID, "--label", "owner="+other)
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "cannot change a subscription's owner")
		_, errOut, code = as(me, "tokens", "list")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "operator's token")
	}

	// The operator sees both and can move a subscription to another team.
	out, errOut, code := d.ctl("subscriptions", "list")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, subs["team-a"].ID)
	require.Contains(t, out, subs["team-b"].ID)
	_, errOut, code = d.ctl("subscriptions", "update", subs["team-a"].ID, "--label", "owner=team-b", "--remove-label", "env")
	require.Equal(t, 0, code, errOut)
	out, _, _ = as("team-b", "subscriptions", "list")
	require.Contains(t, out, subs["team-a"].ID, "moved to team-b")
	out, _, _ = as("team-a", "subscriptions", "list")
	require.NotContains(t, out, subs["team-a"].ID)

	out, errOut, code = d.ctl("tokens", "delete", "team-a-cli")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "deleted team-a-cli\n", out)
	_, errOut, code = as("team-a", "subscriptions", "list")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "wrong bearer token")
	for _, tok := range tokens {
		require.NotContains(t, d.log.String(), tok, "tokens are never logged")
	}
}
