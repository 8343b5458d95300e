package admin

import (
	_ "embed"
	"io"
	"net/http"
)

// openAPI is the OpenAPI 3.1 description of the admin API, served without a
// token at GET /v1/openapi.json: it holds no secrets, and tools fetch it
// before they have one. TestOpenAPIMatchesRoutes keeps it and the route
// table in step.
//
//go:embed openapi.json
var openAPI string

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = io.WriteString(w, openAPI)
}
