package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin"
	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/jetstream/jstest"
)

// team is one team's token and what it created.
type team struct {
	name, token string
	sub         client.Subscription // created with its token
	delivery    string              // a delivery of sub
}

// createToken creates a team token with the operator's token and checks it
// is shown once: the list and a second create never show it.
func createToken(t *testing.T, d *daemon, name, owner string) string {
	t.Helper()
	var tok client.Token
	require.Equal(t, http.StatusCreated, d.call(t, "POST", "/v1/tokens", d.token, fmt.Sprintf(`{"name":%q,"owner":%q}`, name, owner), &tok))
	require.Equal(t, name, tok.Name)
	require.Equal(t, owner, tok.Owner)
	require.True(t, strings.HasPrefix(tok.Token, "wht."+name+"."), tok.Token)
	status, body := d.raw(t, "GET", "/v1/tokens", d.token, "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, `"name": "`+name+`"`)
	require.NotContains(t, body, tok.Token, "the token is shown once")
	require.NotContains(t, body, `"token"`)
	status, body = d.raw(t, "POST", "/v1/tokens", d.token, fmt.Sprintf(`{"name":%q,"owner":%q}`, name, owner))
	require.Equal(t, http.StatusConflict, status, body)
	require.NotContains(t, body, tok.Token)
	return tok.Token
}

// TestTeamTokensIsolateTeams runs two replicas on one NATS server. Teams A
// and B each create a subscription with their token; the operator one of
// its own. Each team sees and manages only its own subscription and its
// deliveries; every other one, the other team's and the operator's,
// answers 404 to every route, and is left unchanged. The operator sees all.
// A deleted token is refused at once on the other replica.
func TestTeamTokensIsolateTeams(t *testing.T) {
	t.Parallel()
	ns := jstest.RunServer(t)
	const opToken = "7c1e4b9a2d5f8e3c6a0b1d4f7e2a5c8b"
	a := start(t, "--nats-url", ns.ClientURL(), "--admin-token", opToken)
	b := start(t, "--nats-url", ns.ClientURL(), "--admin-token", opToken)
	a.token, b.token = opToken, opToken
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(rcv.Close)

	teams := []*team{{name: "team-a"}, {name: "team-b"}}
	for _, tm := range teams {
		tm.token = createToken(t, a, tm.name+"-ci", tm.name)
		// The owner is forced to the token's team; another is refused.
		status, body := a.raw(t, "POST", "/v1/subscriptions", tm.token,
			fmt.Sprintf(`{"url":%q,"events":["task.completed"],"labels":{"owner":"someone-else"}}`, rcv.URL))
		require.Equal(t, http.StatusBadRequest, status, body)
		require.Contains(t, body, "its own team only")
		require.Equal(t, http.StatusCreated, a.call(t, "POST", "/v1/subscriptions", tm.token,
			fmt.Sprintf(`{"url":%q,"events":["task.completed"],"labels":{"env":"prod"}}`, rcv.URL), &tm.sub))
		require.Equal(t, map[string]string{"owner": tm.name, "env": "prod"}, tm.sub.Labels)
		require.NotEmpty(t, tm.sub.Secret, "its creator gets the secret")
	}
	var opSub client.Subscription
	require.Equal(t, http.StatusCreated, a.call(t, "POST", "/v1/subscriptions", opToken,
		fmt.Sprintf(`{"url":%q,"events":["task.completed"]}`, rcv.URL), &opSub))
	require.Empty(t, opSub.Labels, "the operator's subscription has no owner")

	// One event: one delivery per subscription.
	require.Equal(t, http.StatusAccepted, a.call(t, "POST", "/v1/events", opToken, `{"event":"task.completed","data":{"robot_id":"R1"}}`, nil))
	// Each replica indexes AUDIT on its own: wait for both to list all.
	var all client.List[client.Delivery]
	waitFor(t, func() bool {
		var onB client.List[client.Delivery]
		b.call(t, "GET", "/v1/deliveries?status=succeeded", opToken, "", &onB)
		all = client.List[client.Delivery]{}
		a.call(t, "GET", "/v1/deliveries?status=succeeded", opToken, "", &all)
		return len(all.Items) == 3 && len(onB.Items) == 3
	})
	deliveryOf := map[string]string{}
	for _, d := range all.Items {
		deliveryOf[d.SubscriptionID] = d.ID
	}
	for _, tm := range teams {
		tm.delivery = deliveryOf[tm.sub.ID]
		require.NotEmpty(t, tm.delivery)
	}

	for i, me := range teams {
		other := teams[1-i]
		t.Run(me.name, func(t *testing.T) {
			for _, d := range []*daemon{a, b} {
				// Lists hold its own only.
				var subs client.List[client.Subscription]
				require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/subscriptions", me.token, "", &subs))
				require.Len(t, subs.Items, 1)
				require.Equal(t, me.sub.ID, subs.Items[0].ID)
				var ds client.List[client.Delivery]
				require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/deliveries", me.token, "", &ds))
				require.Len(t, ds.Items, 1)
				require.Equal(t, me.delivery, ds.Items[0].ID)
				ds = client.List[client.Delivery]{}
				require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/deliveries?subscription="+other.sub.ID, me.token, "", &ds))
				require.Empty(t, ds.Items, "another team's deliveries are not listed, even by name")
			}
			// Its own subscription: every route works.
			for _, r := range [][2]string{
				{"GET", "/v1/subscriptions/" + me.sub.ID}, {"POST", "/v1/subscriptions/" + me.sub.ID + "/pause"},
				{"POST", "/v1/subscriptions/" + me.sub.ID + "/resume"}, {"POST", "/v1/subscriptions/" + me.sub.ID + "/ping"},
				{"GET", "/v1/deliveries/" + me.delivery},
			} {
				status, body := a.raw(t, r[0], r[1], me.token, "")
				require.Equal(t, http.StatusOK, status, "%s %s: %s", r[0], r[1], body)
			}
			status, body := a.raw(t, "PATCH", "/v1/subscriptions/"+me.sub.ID, me.token, `{"labels":{"owner":"`+other.name+`"}}`)
			require.Equal(t, http.StatusBadRequest, status, body)
			require.Contains(t, body, "cannot change a subscription's owner")
			status, body = a.raw(t, "PATCH", "/v1/subscriptions/"+me.sub.ID, me.token, `{"labels":{"owner":null}}`)
			require.Equal(t, http.StatusBadRequest, status, body)

			// Every other subscription, the other team's and the operator's,
			// and the other team's delivery: not found, unchanged, no secret.
			for _, id := range []string{other.sub.ID, opSub.ID} {
				for _, r := range [][3]string{
					{"GET", "/v1/subscriptions/" + id, ""},
					{"PATCH", "/v1/subscriptions/" + id, `{"description":"taken"}`},
					{"PATCH", "/v1/subscriptions/" + id, `{"labels":{"owner":"` + me.name + `"}}`},
					{"POST", "/v1/subscriptions/" + id + "/pause", ""},
					{"POST", "/v1/subscriptions/" + id + "/resume", ""},
					{"POST", "/v1/subscriptions/" + id + "/rotate-secret", ""},
					{"POST", "/v1/subscriptions/" + id + "/expire-secret", ""},
					{"POST", "/v1/subscriptions/" + id + "/ping", ""},
					{"POST", "/v1/deliveries/replay", `{"subscription":"` + id + `","since":"2020-01-01T00:00:00Z","dry_run":true}`},
					{"POST", "/v1/subscriptions/try", `{"event":"task.completed","data":{},"subscription_id":"` + id + `"}`},
					{"DELETE", "/v1/subscriptions/" + id, ""},
				} {
					for _, d := range []*daemon{a, b} {
						status, body := d.raw(t, r[0], r[1], me.token, r[2])
						require.Equal(t, http.StatusNotFound, status, "%s %s: %s", r[0], r[1], body)
						require.NotContains(t, body, "whsec_")
					}
				}
			}
			for _, r := range [][2]string{{"GET", "/v1/deliveries/" + other.delivery}, {"POST", "/v1/deliveries/" + other.delivery + "/redeliver"}} {
				status, body := a.raw(t, r[0], r[1], me.token, "")
				require.Equal(t, http.StatusNotFound, status, "%s %s: %s", r[0], r[1], body)
			}
			var got client.Subscription
			require.Equal(t, http.StatusOK, a.call(t, "GET", "/v1/subscriptions/"+other.sub.ID, opToken, "", &got))
			require.True(t, got.Active)
			require.Empty(t, got.Description)
			require.Equal(t, other.name, got.Labels["owner"])
			require.True(t, got.PreviousSecretExpiresAt.IsZero(), "not rotated")

			// The operator's routes.
			for _, r := range [][3]string{
				{"POST", "/v1/events", `{"event":"task.completed","data":{}}`},
				{"GET", "/v1/events", ""}, {"GET", "/v1/events/" + all.Items[0].EventID, ""},
				{"GET", "/v1/status", ""}, {"GET", "/v1/tokens", ""},
				{"POST", "/v1/tokens", `{"name":"mine","owner":"` + me.name + `"}`},
				{"DELETE", "/v1/tokens/" + other.name + "-ci", ""},
			} {
				status, body := a.raw(t, r[0], r[1], me.token, r[2])
				require.Equal(t, http.StatusForbidden, status, "%s %s: %s", r[0], r[1], body)
			}
		})
	}

	// A replay is its team's: the other team cannot follow it.
	var rp client.Replay
	require.Equal(t, http.StatusAccepted, a.call(t, "POST", "/v1/deliveries/replay", teams[0].token,
		`{"subscription":"`+teams[0].sub.ID+`","since":"2020-01-01T00:00:00Z"}`, &rp))
	require.Equal(t, http.StatusOK, a.call(t, "GET", "/v1/replays/"+rp.ID, teams[0].token, "", nil))
	require.Equal(t, http.StatusNotFound, a.call(t, "GET", "/v1/replays/"+rp.ID, teams[1].token, "", nil))
	require.Equal(t, http.StatusOK, a.call(t, "GET", "/v1/replays/"+rp.ID, opToken, "", nil))

	// The operator sees every subscription and delivery.
	var subs client.List[client.Subscription]
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/subscriptions", opToken, "", &subs))
	require.Len(t, subs.Items, 3)

	// A deleted token is refused at once, on the other replica too.
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/subscriptions", teams[0].token, "", nil))
	require.Equal(t, http.StatusNoContent, a.call(t, "DELETE", "/v1/tokens/team-a-ci", opToken, "", nil))
	status, _ := b.raw(t, "GET", "/v1/subscriptions", teams[0].token, "")
	require.Equal(t, http.StatusUnauthorized, status, "refused on replica b right after the delete on a")
	status, _ = a.raw(t, "GET", "/v1/subscriptions", teams[0].token, "")
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/subscriptions", teams[1].token, "", nil), "the other team's token still works")
	require.Equal(t, http.StatusNotFound, a.call(t, "DELETE", "/v1/tokens/team-a-ci", opToken, "", nil))
	// A new token of the same name is another token.
	fresh := createToken(t, a, "team-a-ci", "team-a")
	require.NotEqual(t, teams[0].token, fresh)
	status, _ = b.raw(t, "GET", "/v1/subscriptions", teams[0].token, "")
	require.Equal(t, http.StatusUnauthorized, status, "the deleted token stays refused")
	require.NotContains(t, a.logs.String(), fresh, "tokens are never logged")
}

// TestEveryRouteAnswersATeamTokenByItsScope walks the route table of a
// real daemon with a team token: the operator's routes answer 403, the
// team's routes do not refuse it (401/403), the public ones need no
// token. A route added without the right scope fails here or in
// TestEveryRouteHasAScope.
func TestEveryRouteAnswersATeamTokenByItsScope(t *testing.T) {
	t.Parallel()
	d := start(t)
	tok := createToken(t, d, "walker", "team-w")
	srv, err := admin.New(admin.Config{Token: "only-to-list-the-routes-0123456789"}, admin.Deps{}, zerolog.Nop())
	require.NoError(t, err)
	param := regexp.MustCompile(`\{[a-z]+\}`)
	n := 0
	for _, p := range srv.Routes() {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			method, path = "GET", p
		}
		path = strings.ReplaceAll(path, "{$}", "")
		path = param.ReplaceAllString(path, uuid.NewString())
		if strings.HasSuffix(path, "/") && path != "/" {
			path += "x"
		}
		scope := srv.RouteScope(p)
		n++
		switch scope {
		case "operator":
			status, body := d.raw(t, method, path, tok, "")
			if p == "GET /metrics" {
				require.NotEqual(t, http.StatusUnauthorized, status, "metrics are public unless --metrics-require-token")
				continue
			}
			require.Equal(t, http.StatusForbidden, status, "%s: %s", p, body)
		case "team":
			status, body := d.raw(t, method, path, tok, "")
			require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden}, status, "%s: %s", p, body)
		case "public":
			status, body := d.raw(t, method, path, "", "")
			require.NotEqual(t, http.StatusUnauthorized, status, "%s: %s", p, body)
		default:
			t.Errorf("%s has no scope", p)
		}
	}
	require.Greater(t, n, 25)

	// With --metrics-require-token, metrics are the operator's.
	m := start(t, "--metrics-require-token")
	mtok := createToken(t, m, "walker", "team-w")
	status, _ := m.raw(t, "GET", "/metrics", mtok, "")
	require.Equal(t, http.StatusForbidden, status)
	status, _ = m.raw(t, "GET", "/metrics", m.token, "")
	require.Equal(t, http.StatusOK, status)
}

// TestTeamConsoleShowsItsOwnOnly logs a team into the console: it lists
// its subscriptions and deliveries only, cannot open or act on another
// team's, and its session ends with its token.
func TestTeamConsoleShowsItsOwnOnly(t *testing.T) {
	t.Parallel()
	d := start(t)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(rcv.Close)
	teams := []*team{{name: "team-a"}, {name: "team-b"}}
	for _, tm := range teams {
		tm.token = createToken(t, d, tm.name+"-web", tm.name)
		require.Equal(t, http.StatusCreated, d.call(t, "POST", "/v1/subscriptions", tm.token,
			fmt.Sprintf(`{"url":%q,"events":["task.completed"],"description":"board of %s"}`, rcv.URL, tm.name), &tm.sub))
	}
	require.Equal(t, http.StatusAccepted, d.call(t, "POST", "/v1/events", d.token, `{"event":"task.completed","data":{}}`, nil))
	var all client.List[client.Delivery]
	waitFor(t, func() bool {
		all = client.List[client.Delivery]{}
		d.call(t, "GET", "/v1/deliveries?status=succeeded", d.token, "", &all)
		return len(all.Items) == 2
	})
	for _, dv := range all.Items {
		for _, tm := range teams {
			if dv.SubscriptionID == tm.sub.ID {
				tm.delivery = dv.ID
			}
		}
	}

	c := from(t, "127.0.0.1")
	login := func(token string) *http.Cookie {
		resp, err := c.PostForm(d.api+"/ui/login", url.Values{"token": {token}})
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Len(t, resp.Cookies(), 1)
		return resp.Cookies()[0]
	}
	page := func(ck *http.Cookie, method, path string, form url.Values) (int, string) {
		req, err := http.NewRequest(method, d.api+path, strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(ck)
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}

	for i, me := range teams {
		other := teams[1-i]
		ck := login(me.token)
		status, body := page(ck, "GET", "/ui/subscriptions", nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, me.sub.ID)
		require.Contains(t, body, "board of "+me.name)
		require.NotContains(t, body, other.sub.ID)
		require.NotContains(t, body, "board of "+other.name)
		status, body = page(ck, "GET", "/ui/deliveries", nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, me.delivery)
		require.NotContains(t, body, other.delivery)
		require.NotContains(t, body, other.sub.ID)
		status, _ = page(ck, "GET", "/ui/deliveries/"+other.delivery, nil)
		require.Equal(t, http.StatusNotFound, status)
		status, _ = page(ck, "GET", "/ui/deliveries?subscription="+other.sub.ID, nil)
		require.Equal(t, http.StatusOK, status)

		_, listPage := page(ck, "GET", "/ui/subscriptions", nil)
		m := csrfInput.FindStringSubmatch(listPage)
		require.NotNil(t, m)
		status, _ = page(ck, "POST", "/ui/subscriptions/"+other.sub.ID+"/pause", url.Values{"csrf": {m[1]}})
		require.Equal(t, http.StatusNotFound, status)
		var got client.Subscription
		require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/subscriptions/"+other.sub.ID, d.token, "", &got))
		require.True(t, got.Active, "the other team's subscription was not paused")
		status, _ = page(ck, "POST", "/ui/subscriptions/"+me.sub.ID+"/resume", url.Values{"csrf": {m[1]}})
		require.Equal(t, http.StatusSeeOther, status, "it acts on its own")
	}

	// The operator's console shows both.
	ck := login(d.token)
	status, body := page(ck, "GET", "/ui/subscriptions", nil)
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, teams[0].sub.ID)
	require.Contains(t, body, teams[1].sub.ID)

	// A team's session ends with its token.
	ck = login(teams[0].token)
	status, _ = page(ck, "GET", "/ui/subscriptions", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, http.StatusNoContent, d.call(t, "DELETE", "/v1/tokens/team-a-web", d.token, "", nil))
	status, body = page(ck, "GET", "/ui/subscriptions", nil)
	require.Equal(t, http.StatusUnauthorized, status)
	require.Contains(t, body, "log in again")
	resp, err := c.PostForm(d.api+"/ui/login", url.Values{"token": {teams[0].token}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a deleted token cannot log in")
}
