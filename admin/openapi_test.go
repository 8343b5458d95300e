package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin"
	"github.com/robotlab/webhookd/admin/client"
)

type spec struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"schemas"`
	} `json:"components"`
}

// served fetches /v1/openapi.json from a server's handler, without a token.
func served(t *testing.T) (*admin.Server, []byte) {
	t.Helper()
	s, err := admin.New(admin.Config{Token: "t0ken-for-the-openapi-test-32byt"}, admin.Deps{}, zerolog.Nop())
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/openapi.json", nil))
	require.Equal(t, http.StatusOK, rec.Code, "served without a token")
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	raw, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return s, raw
}

// TestOpenAPIMatchesRoutes checks that every API route the server registers
// is described, and that every described operation is served. Patterns
// without a method are fallbacks or subtrees (the console under /ui/), not
// operations. A route added to admin.Server without the spec fails here.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	s, raw := served(t)
	var doc spec
	require.NoError(t, json.Unmarshal(raw, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)

	var described []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				described = append(described, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(described)
	var served []string
	for _, p := range s.Routes() {
		if method, path, ok := strings.Cut(p, " "); ok && strings.ToUpper(method) == method && !strings.HasPrefix(path, "/ui/") {
			// ServeMux syntax to OpenAPI's: "/{$}" is "/" exactly, "{rest...}" a path parameter.
			path = strings.ReplaceAll(strings.ReplaceAll(path, "{$}", ""), "...}", "}")
			served = append(served, method+" "+path)
		}
	}
	slices.Sort(served)
	require.NotEmpty(t, served)
	require.Equal(t, served, described, "routes registered by admin.Server (left) and operations in admin/openapi.json (right) differ")
}

// TestOpenAPIRefsResolve checks that every $ref in the document names
// something it defines.
func TestOpenAPIRefsResolve(t *testing.T) {
	t.Parallel()
	_, raw := served(t)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	var walk func(v any)
	refs := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				refs++
				var at any = doc
				for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, ok := at.(map[string]any)
					require.True(t, ok, "$ref %s", ref)
					at, ok = m[part]
					require.True(t, ok, "$ref %s does not resolve", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	require.Greater(t, refs, 20)
}

// TestOpenAPISchemasMatchWireTypes checks that the properties of each
// object schema are exactly the JSON fields of the wire type it describes,
// so a field added to admin/client shows up here until the spec has it.
func TestOpenAPISchemasMatchWireTypes(t *testing.T) {
	t.Parallel()
	_, raw := served(t)
	var doc spec
	require.NoError(t, json.Unmarshal(raw, &doc))
	types := map[string]any{
		"Subscription": client.Subscription{}, "SubscriptionInput": client.SubscriptionInput{},
		"SubscriptionPatch": client.SubscriptionPatch{}, "Attempt": client.Attempt{}, "Delivery": client.Delivery{},
		"ReplayRequest": client.ReplayRequest{}, "ReplayResult": client.ReplayResult{}, "Replay": client.Replay{},
		"PublishRequest": client.PublishRequest{}, "Published": client.Published{}, "Status": client.Status{},
		"EndpointHealth": client.EndpointHealth{}, "StreamStatus": client.StreamStatus{},
		"ConsumerStatus": client.ConsumerStatus{}, "DeliveryList": client.List[client.Delivery]{},
		"RotateRequest": client.RotateRequest{}, "PingResult": client.PingResult{},
		"Event": client.Event{}, "EventList": client.List[client.Event]{},
		"EventType": client.EventType{}, "EventTypeList": client.EventTypeList{},
		"TryRequest": client.TryRequest{}, "TryResult": client.TryResult{}, "ExprError": client.ExprError{},
		"ListenerInput": client.ListenerInput{}, "ListenReady": client.ListenReady{},
		"ListenEvent": client.ListenEvent{}, "ListenDropped": client.ListenDropped{},
	}
	for name, v := range types {
		schema, ok := doc.Components.Schemas[name]
		require.True(t, ok, "schema %s missing", name)
		var props []string
		for p := range schema.Properties {
			props = append(props, p)
		}
		slices.Sort(props)
		require.Equal(t, jsonFields(reflect.TypeOf(v)), props, "fields of %T (left) and properties of schema %s (right)", v, name)
	}
}

func jsonFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
