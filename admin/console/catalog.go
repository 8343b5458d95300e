package console

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/robotlab/webhookd/admin/client"
)

// eventType is one type of the event catalog. The API lists a type as its
// name, or as an object with its name ("type" or "name") and, when the
// catalog has them, a description, a JSON schema and a sample.
type eventType struct {
	Type string
	// Schema and Sample are indented JSON; empty when the catalog has none.
	Schema, Sample string
}

// catalog reads the event catalog through the API.
func (h handlers) catalog(r *http.Request) ([]eventType, error) {
	var list client.EventTypeList
	if err := h.call(r.Context(), r, http.MethodGet, "/v1/event-types", &list); err != nil {
		return nil, err
	}
	out := make([]eventType, 0, len(list.Items))
	for _, et := range list.Types {
		out = append(out, eventType{Type: et.Type, Schema: indented(et.Schema), Sample: indented(et.Sample)})
	}
	if len(list.Types) == 0 { // an API from before schemas
		for _, t := range list.Items {
			out = append(out, eventType{Type: t})
		}
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
