package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/robotlab/webhookd/admin/client"
)

// eventType is one type of the event catalog. The API lists a type as its
// name, or as an object with its name ("type" or "name") and, when the
// catalog has them, a description, a JSON schema and a sample.
type eventType struct {
	Type, Description string
	// Schema and Sample are indented JSON; empty when the catalog has none.
	Schema, Sample string
	Extra          []kv
}

var eventTypeKnown = []string{"type", "name", "description", "schema", "sample", "example"}

// catalog reads the event catalog through the API.
func (h handlers) catalog(r *http.Request) ([]eventType, error) {
	var list client.List[json.RawMessage]
	if err := h.call(r.Context(), r, http.MethodGet, "/v1/event-types", &list); err != nil {
		return nil, err
	}
	out := make([]eventType, 0, len(list.Items))
	for _, raw := range list.Items {
		var name string
		if json.Unmarshal(raw, &name) == nil {
			out = append(out, eventType{Type: name})
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("console: decode an event type: %w", err)
		}
		et := eventType{Extra: extras(m, eventTypeKnown...)}
		for _, k := range []string{"type", "name"} {
			if s, ok := m[k].(string); ok && et.Type == "" {
				et.Type = s
			}
		}
		et.Description, _ = m["description"].(string)
		var rawFields struct{ Schema, Sample, Example json.RawMessage }
		if err := json.Unmarshal(raw, &rawFields); err != nil {
			return nil, fmt.Errorf("console: decode an event type: %w", err)
		}
		et.Schema = indented(rawFields.Schema)
		if et.Sample = indented(rawFields.Sample); et.Sample == "" {
			et.Sample = indented(rawFields.Example)
		}
		out = append(out, et)
	}
	return out, nil
}

// indented is raw JSON indented, in its own key order; "" for none or null.
func indented(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

func (h handlers) eventTypes(w http.ResponseWriter, r *http.Request, p *page) {
	types, err := h.catalog(r)
	if err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	p.Title, p.Nav, p.Data = "Event types", "event-types", types
	h.c.render(w, http.StatusOK, "eventtypes", p)
}
