package admin

import (
	"context"
	"net/http"
	"strings"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/subscriptions"
)

// scope says who may call a route.
type scope int

const (
	// scopePublic routes need no credential (the console's pages check
	// their own session).
	scopePublic scope = iota + 1
	// scopeOperator routes take the operator's token only: a team token
	// is answered 403.
	scopeOperator
	// scopeTeam routes take the operator's token or a team token; for a
	// team the handler shows and acts on its own subscriptions only, and
	// answers 404 for any other, as if it did not exist.
	scopeTeam
)

// routeScopes declares who may call each route Server.Routes lists, one
// line per route. A route missing here is refused to team tokens, and
// TestEveryRouteHasAScope fails until it is declared. Declare scopeTeam
// only for a handler that confines a team to its subscriptions (teamOf,
// visible).
var routeScopes = map[string]scope{
	"GET /{$}":                 scopePublic, // redirect to the console
	"GET /healthz":             scopePublic,
	"GET /readyz":              scopePublic,
	"GET /metrics":             scopeOperator, // public unless --metrics-require-token
	"GET /v1/openapi.json":     scopePublic,
	"/ui/":                     scopePublic, // the console: its own login, as operator or team
	"/ui/login":                scopePublic,
	"/ui/static/":              scopePublic,
	"/v1/":                     scopeTeam, // no such route: 404 for any token
	"GET /v1/status":           scopeOperator,
	"POST /v1/events":          scopeOperator, // reaches every team's receivers
	"GET /v1/events":           scopeOperator, // every event's payload and deliveries
	"GET /v1/events/{id}":      scopeOperator,
	"GET /v1/event-types":      scopeTeam, // the catalog, to pick events
	"POST /v1/tokens":          scopeOperator,
	"GET /v1/tokens":           scopeOperator,
	"DELETE /v1/tokens/{name}": scopeOperator,
	// A listener receives every event it matches, whichever team's.
	"POST /v1/listeners":            scopeOperator,
	"GET /v1/listeners/{id}/events": scopeOperator,

	"POST /v1/subscriptions":                    scopeTeam,
	"GET /v1/subscriptions":                     scopeTeam,
	"GET /v1/subscriptions/{id}":                scopeTeam,
	"PATCH /v1/subscriptions/{id}":              scopeTeam,
	"DELETE /v1/subscriptions/{id}":             scopeTeam,
	"POST /v1/subscriptions/{id}/rotate-secret": scopeTeam,
	"POST /v1/subscriptions/{id}/expire-secret": scopeTeam,
	"POST /v1/subscriptions/{id}/ping":          scopeTeam,
	"POST /v1/subscriptions/try":                scopeTeam, // another team's subscription_id: 404
	"POST /v1/subscriptions/{id}/pause":         scopeTeam,
	"POST /v1/subscriptions/{id}/resume":        scopeTeam,
	"GET /v1/deliveries":                        scopeTeam,
	"GET /v1/deliveries/{id}":                   scopeTeam,
	"POST /v1/deliveries/{id}/redeliver":        scopeTeam,
	"POST /v1/deliveries/replay":                scopeTeam,
	"GET /v1/replays/{id}":                      scopeTeam,
}

// principal is who a request's credential names: the operator (team "")
// or a team token.
type principal struct {
	team  string // the token's owner; "" for the operator
	token string // the team token's name
}

type principalKey struct{}

func withPrincipal(ctx context.Context, p principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// teamOf returns the team whose token made the request, or "" for the
// operator.
func teamOf(r *http.Request) string {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p.team
}

// allowed reports whether the request's principal may call its route
// (r.Pattern, set by the mux): the operator may call every route, a team
// only the scopeTeam ones.
func allowed(r *http.Request) bool {
	return teamOf(r) == "" || routeScopes[r.Pattern] == scopeTeam
}

// operatorOnly is the answer to a team token on an operator route.
func operatorOnly(r *http.Request) *client.Error {
	return apiError(http.StatusForbidden, client.CodeForbidden, "%s %s needs the operator's token: a team token manages its team's subscriptions only", r.Method, r.URL.Path)
}

// visible reports whether the request's principal may see and manage sub:
// the operator every subscription, a team those whose owner label is its
// team.
func visible(r *http.Request, sub subscriptions.Subscription) bool {
	team := teamOf(r)
	return team == "" || sub.Owner() == team
}

// ownsSubscription reports whether the request's principal may see the
// deliveries of subscription id: the operator always, a team while the
// subscription exists and is its own.
func (s *Server) ownsSubscription(r *http.Request, id string) bool {
	if teamOf(r) == "" {
		return true
	}
	sub, ok := s.deps.Subs.Get(id)
	return ok && visible(r, sub)
}

// checkTeamEvents refuses, for a team, events that take webhookd's own
// events (webhook.delivery_exhausted, …), by name or by pattern: they name
// the subscription, delivery, event and receiver host they are about,
// whatever its team.
func (s *Server) checkTeamEvents(r *http.Request, events []string) error {
	if teamOf(r) == "" {
		return nil
	}
	for _, e := range events {
		for t := range s.catalog {
			if strings.HasPrefix(t, "webhook.") && subscriptions.MatchPattern(e, t) {
				return invalid("events: %q takes webhookd's own events (%s), which name other teams' subscriptions: a team token may not subscribe to them", e, t)
			}
		}
	}
	return nil
}

// maxTeamPages bounds the index pages one team's delivery list reads to
// fill its page: the answer may hold fewer items than asked, with a
// cursor to go on.
const maxTeamPages = 32

// listVisible is history.Store.List for the request's principal: for a
// team, only the deliveries of its own subscriptions. Without a
// subscription filter it reads the index page by page, asking each time
// for just the items still missing, so the cursor it returns is exact.
func (s *Server) listVisible(r *http.Request, q history.Query) ([]history.Delivery, string, error) {
	if teamOf(r) == "" {
		return s.deps.Store.List(q)
	}
	if q.SubscriptionID != "" {
		if !s.ownsSubscription(r, q.SubscriptionID) {
			return nil, "", nil // as for a subscription without deliveries
		}
		return s.deps.Store.List(q)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 50
	}
	var out []history.Delivery
	for range maxTeamPages {
		q.Limit = limit - len(out)
		ds, next, err := s.deps.Store.List(q)
		if err != nil {
			return nil, "", err
		}
		for _, d := range ds {
			if s.ownsSubscription(r, d.SubscriptionID) {
				out = append(out, d)
			}
		}
		if next == "" || len(out) == limit {
			return out, next, nil
		}
		q.Cursor = next
	}
	return out, q.Cursor, nil
}

// RouteScope returns who may call a route Routes lists: "public" (no
// credential), "operator" (the operator's token only) or "team" (a team
// token too, confined to its team's subscriptions); "" when the route has
// no scope declared, which takes the operator's token only.
func (s *Server) RouteScope(pattern string) string {
	switch routeScopes[pattern] {
	case scopePublic:
		return "public"
	case scopeOperator:
		return "operator"
	case scopeTeam:
		return "team"
	}
	return ""
}
