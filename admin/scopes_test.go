package admin_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEveryRouteHasAScope walks the route table: every route must declare
// who may call it (routeScopes in admin/scopes.go, one line per route), so
// an endpoint added later cannot forget to say whether a team token may
// call it; and the OpenAPI description says the same (x-scope).
func TestEveryRouteHasAScope(t *testing.T) {
	t.Parallel()
	s, raw := served(t)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	routes := s.Routes()
	require.NotEmpty(t, routes)
	for _, p := range routes {
		sc := s.RouteScope(p)
		if sc == "" {
			t.Errorf("route %q has no scope: add one line for it to routeScopes in admin/scopes.go (scopePublic, scopeOperator or scopeTeam)", p)
			continue
		}
		method, path, ok := strings.Cut(p, " ")
		if !ok || strings.HasPrefix(path, "/ui/") {
			continue // fallbacks and the console's subtree: not API operations
		}
		path = strings.ReplaceAll(strings.ReplaceAll(path, "{$}", ""), "...}", "}")
		var op struct {
			Scope string `json:"x-scope"`
		}
		require.NoError(t, json.Unmarshal(doc.Paths[path][strings.ToLower(method)], &op), p)
		require.Equal(t, sc, op.Scope, "x-scope of %s in admin/openapi.json", p)
	}
	require.Equal(t, "operator", s.RouteScope("POST /v1/tokens"), "token management is the operator's")
	require.Equal(t, "", s.RouteScope("GET /v1/not-a-route"))
}
