package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/robotlab/webhookd/admin/client"
)

// tryForm is the try panel's form: a sample event and the expressions to
// evaluate on it, as typed.
type tryForm struct {
	SubscriptionID, Event, Data, Filter, Transform string
	Catalog                                        []eventType
}

// tryError is one expression error of a try, with the source line it
// points at and a caret under its column.
type tryError struct {
	client.ExprError
	Pointer string
}

// tryOutcome is what the sample came to.
type tryOutcome struct {
	Matched bool
	// Body is the body that would be sent, indented; empty when the
	// transform failed.
	Body   string
	Errors []tryError
	// Filtered and Transformed say which expressions were tried.
	Filtered, Transformed bool
}

type tryData struct {
	Form   tryForm
	Result *tryOutcome
}

// sampleOf is the catalog's sample data of type t, or an empty object.
func sampleOf(catalog []eventType, t string) string {
	for _, et := range catalog {
		if et.Type == t && et.Sample != "" {
			return et.Sample
		}
	}
	return "{}"
}

// tryPage opens the try panel, filled in with a subscription's
// expressions and a sample of its first catalog type when one is named.
func (h handlers) tryPage(w http.ResponseWriter, r *http.Request, p *page) {
	catalog, err := h.catalog(r)
	if err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	f := tryForm{Catalog: catalog}
	if id := r.URL.Query().Get("subscription"); id != "" {
		sub, err := h.getSub(r, id)
		if err != nil {
			h.c.failAPI(w, p, err)
			return
		}
		f.SubscriptionID, f.Filter, f.Transform = sub.ID, sub.Filter, sub.Transform
		if i := slices.IndexFunc(sub.Events, func(e string) bool { return inCatalog(catalog, e) }); i >= 0 {
			f.Event = sub.Events[i]
		}
	}
	if f.Event == "" && len(catalog) > 0 {
		f.Event = catalog[0].Type
	}
	f.Data = sampleOf(catalog, f.Event)
	p.Title, p.Nav, p.Data = "Try a filter and a transform", "subscriptions", tryData{Form: f}
	h.c.render(w, http.StatusOK, "try", p)
}

// try evaluates the form's expressions on its sample through the API,
// which sends nothing, and shows the outcome above the form as typed.
func (h handlers) try(w http.ResponseWriter, r *http.Request, p *page) {
	catalog, err := h.catalog(r)
	if err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	f := tryForm{SubscriptionID: strings.TrimSpace(r.PostFormValue("subscription_id")), Event: r.PostFormValue("event"),
		Data: r.PostFormValue("data"), Filter: strings.TrimSpace(r.PostFormValue("filter")),
		Transform: strings.TrimSpace(r.PostFormValue("transform")), Catalog: catalog}
	d := tryData{Form: f}
	p.Title, p.Nav, p.Data = "Try a filter and a transform", "subscriptions", &d
	data := strings.TrimSpace(f.Data)
	if data == "" {
		data = "{}"
	}
	if !json.Valid([]byte(data)) {
		h.refused(w, p, "try", formError{errors.New("data: not valid JSON")})
		return
	}
	req := client.TryRequest{Event: f.Event, Data: json.RawMessage(data), Filter: f.Filter, Transform: f.Transform,
		SubscriptionID: f.SubscriptionID}
	var res client.TryResult
	if err := h.send(r.Context(), r, http.MethodPost, "/v1/subscriptions/try", req, &res); err != nil {
		h.refused(w, p, "try", err)
		return
	}
	out := &tryOutcome{Matched: res.Matched, Filtered: f.Filter != "" || f.SubscriptionID != "",
		Transformed: f.Transform != "" || f.SubscriptionID != ""}
	if len(res.Body) > 0 && string(res.Body) != "null" {
		out.Body = indented(res.Body)
	}
	for _, e := range res.Errors {
		src := f.Filter
		if e.Field == "transform" {
			src = f.Transform
		}
		out.Errors = append(out.Errors, tryError{ExprError: e, Pointer: pointer(src, e.Line, e.Column)})
	}
	d.Result = out
	h.c.render(w, http.StatusOK, "try", p)
}

// pointer is line (1-based) of src with a caret under column (1-based,
// in characters); "" when the error has no position in src.
func pointer(src string, line, column int) string {
	lines := strings.Split(src, "\n")
	if line < 1 || line > len(lines) || column < 1 {
		return ""
	}
	l := strings.TrimRight(lines[line-1], "\r")
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n%s^", l, strings.Repeat(" ", column-1))
	return b.String()
}
