package admin

import (
	"net/http"
	"slices"
)

// routeMux is an http.ServeMux that remembers the patterns registered on
// it, so that the route table can be listed (Server.Routes) and checked
// against the OpenAPI description instead of drifting from it.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func newRouteMux() *routeMux { return &routeMux{ServeMux: http.NewServeMux()} }

// Handle registers h for pattern and records the pattern.
func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

// HandleFunc registers h for pattern and records the pattern.
func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// Routes returns every pattern the server's handler registers, sorted, in
// http.ServeMux syntax ("GET /v1/subscriptions/{id}"). Patterns without a
// method ("/v1/", "/ui/") are fallbacks and subtrees, not API operations.
func (s *Server) Routes() []string {
	m := s.routes()
	return slices.Sorted(slices.Values(m.patterns))
}
