package console_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/console"
)

// TestTeamSessionsCallTheAPIAsTheirTeam: a token TeamLogin accepts logs in;
// the console's API calls for that session carry its subject and no admin
// token, while the operator's carry the token and no subject. A token
// TeamLogin refuses is a wrong token; one it cannot check is a 503.
func TestTeamSessionsCallTheAPIAsTheirTeam(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen [][2]string // Authorization, Subject
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, [2]string{r.Header.Get("Authorization"), console.Subject(r.Context())})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"items":[],"next_cursor":""}`))
	})
	last := func() [2]string {
		mu.Lock()
		defer mu.Unlock()
		require.NotEmpty(t, seen)
		return seen[len(seen)-1]
	}
	c, err := console.New(console.Config{Token: token, SessionTTL: time.Hour,
		TeamLogin: func(_ context.Context, tok string) (string, bool, error) {
			switch tok {
			case "wht.team-a-ci.secret":
				return "team-a-ci/tag", true, nil
			case "wht.broken.x":
				return "", false, errors.New("bucket unreachable")
			}
			return "", false, nil
		}}, zerolog.Nop())
	require.NoError(t, err)
	b := &bundle{h: c.Handler(api)}

	login := func(tok string) answer { return b.do(t, http.MethodPost, "/ui/login", nil, url.Values{"token": {tok}}) }
	cookie := func(a answer) *http.Cookie {
		resp := http.Response{Header: a.header}
		require.Len(t, resp.Cookies(), 1)
		return resp.Cookies()[0]
	}

	a := login("wht.team-a-ci.secret")
	require.Equal(t, http.StatusSeeOther, a.status, a.body)
	team := cookie(a)
	require.NotContains(t, team.Value, "secret", "the cookie holds no token")
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/ui/subscriptions", team, nil).status)
	require.Equal(t, [2]string{"", "team-a-ci/tag"}, last(), "a team's call: its subject, no admin token")

	op := cookie(login(token))
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/ui/subscriptions", op, nil).status)
	require.Equal(t, [2]string{"Bearer " + token, ""}, last(), "the operator's call: the admin token, no subject")

	require.Equal(t, http.StatusUnauthorized, login("wht.team-b.guess").status)
	require.Equal(t, http.StatusServiceUnavailable, login("wht.broken.x").status)
}
