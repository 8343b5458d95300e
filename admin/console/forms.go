package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/robotlab/webhookd/admin/client"
)

// subForm is the create and edit form of a subscription, as the operator
// filled it in: a form refused by the API is shown again as it was sent,
// with the API's one-line error, so nothing typed is lost.
type subForm struct {
	// ID is empty when creating.
	ID                                     string
	URL, Description, Timeout, MaxInFlight string
	RetryPolicy                            string
	// Filter, Transform and OrderingKey are the CEL expressions.
	Filter, Transform, OrderingKey string
	// Labels are "key=value" words; LabelKeys the keys the subscription
	// has, so that an edit removes those no longer written.
	Labels    string
	LabelKeys []string
	// Checked are the catalog types ticked; Patterns the other types and
	// patterns, separated by spaces or commas.
	Checked  map[string]bool
	Patterns string
	// Headers are "Name: value" lines to set; HeaderNames the headers the
	// subscription has (values never shown), Remove those ticked to go.
	Headers     string
	HeaderNames []string
	Remove      map[string]bool
	Catalog     []eventType
}

// formOf fills the edit form from a subscription.
func formOf(sub client.Subscription, catalog []eventType) subForm {
	f := subForm{ID: sub.ID, URL: sub.URL, Description: sub.Description, Timeout: sub.Timeout,
		RetryPolicy: sub.RetryPolicy, Filter: sub.Filter, Transform: sub.Transform, OrderingKey: sub.OrderingKey,
		Checked: map[string]bool{}, Remove: map[string]bool{}, Catalog: catalog}
	if sub.MaxInFlight != 0 {
		f.MaxInFlight = strconv.Itoa(sub.MaxInFlight)
	}
	var other []string
	for _, e := range sub.Events {
		if inCatalog(catalog, e) {
			f.Checked[e] = true
		} else {
			other = append(other, e)
		}
	}
	f.Patterns = strings.Join(other, " ")
	var labels []string
	for k, v := range sub.Labels {
		labels = append(labels, k+"="+v)
		f.LabelKeys = append(f.LabelKeys, k)
	}
	slices.Sort(labels)
	f.Labels = strings.Join(labels, " ")
	for name := range sub.Headers {
		f.HeaderNames = append(f.HeaderNames, name)
	}
	slices.Sort(f.HeaderNames)
	return f
}

func inCatalog(catalog []eventType, name string) bool {
	return slices.ContainsFunc(catalog, func(t eventType) bool { return t.Type == name })
}

// formFrom reads the posted form; was is the form of the subscription
// edited (zero when creating).
func formFrom(r *http.Request, id string, catalog []eventType, was subForm) subForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	f := subForm{ID: id, URL: v("url"), Description: v("description"), Timeout: v("timeout"),
		MaxInFlight: v("max_in_flight"), RetryPolicy: v("retry_policy"), Patterns: v("patterns"),
		Headers: r.PostFormValue("headers"), HeaderNames: was.HeaderNames, Labels: v("labels"), LabelKeys: was.LabelKeys,
		Filter: v("filter"), Transform: v("transform"), OrderingKey: v("ordering_key"),
		Checked: map[string]bool{}, Remove: map[string]bool{}, Catalog: catalog}
	for _, e := range r.PostForm["event"] {
		f.Checked[e] = true
	}
	for _, name := range r.PostForm["remove_header"] {
		f.Remove[name] = true
	}
	return f
}

// events are the ticked catalog types, in the catalog's order, then the
// patterns typed.
func (f subForm) events() []string {
	var out []string
	for _, t := range f.Catalog {
		if f.Checked[t.Type] {
			out = append(out, t.Type)
		}
	}
	for e := range strings.FieldsFuncSeq(f.Patterns, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' }) {
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// headers parses the "Name: value" lines.
func (f subForm) headers() (map[string]string, error) {
	out := map[string]string{}
	for i, line := range strings.Split(f.Headers, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("headers: line %d is not \"Name: value\"", i+1)
		}
		out[strings.TrimSpace(name)] = strings.TrimSpace(value)
	}
	return out, nil
}

// labels parses the "key=value" words, separated by spaces or commas.
func (f subForm) labels() (map[string]string, error) {
	out := map[string]string{}
	for w := range strings.FieldsFuncSeq(f.Labels, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' }) {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("labels: %q is not key=value", w)
		}
		out[k] = v
	}
	return out, nil
}

func (f subForm) maxInFlight() (int, error) {
	if f.MaxInFlight == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(f.MaxInFlight)
	if err != nil {
		return 0, fmt.Errorf("max in flight: %q is not a whole number (0 for the server's default)", f.MaxInFlight)
	}
	return n, nil
}

// input is the create request of the form.
func (f subForm) input() (client.SubscriptionInput, error) {
	in := client.SubscriptionInput{URL: f.URL, Events: f.events(), Description: f.Description,
		Timeout: f.Timeout, RetryPolicy: f.RetryPolicy, Filter: f.Filter, Transform: f.Transform, OrderingKey: f.OrderingKey}
	var err error
	if in.MaxInFlight, err = f.maxInFlight(); err != nil {
		return in, err
	}
	hs, err := f.headers()
	if err != nil {
		return in, err
	}
	if len(hs) > 0 {
		in.Headers = hs
	}
	ls, err := f.labels()
	if err != nil {
		return in, err
	}
	if len(ls) > 0 {
		in.Labels = ls
	}
	return in, nil
}

// patch is the edit request of the form: every field as shown, the headers
// typed set, the headers ticked removed.
func (f subForm) patch() (client.SubscriptionPatch, error) {
	events := f.events()
	p := client.SubscriptionPatch{URL: &f.URL, Events: &events, Description: &f.Description,
		Timeout: &f.Timeout, RetryPolicy: &f.RetryPolicy, Filter: &f.Filter, Transform: &f.Transform, OrderingKey: &f.OrderingKey}
	n, err := f.maxInFlight()
	if err != nil {
		return p, err
	}
	p.MaxInFlight = &n
	hs, err := f.headers()
	if err != nil {
		return p, err
	}
	p.Headers = map[string]*string{}
	for name, v := range hs {
		p.Headers[name] = &v
	}
	for name := range f.Remove {
		if _, set := hs[name]; !set {
			p.Headers[name] = nil
		}
	}
	ls, err := f.labels()
	if err != nil {
		return p, err
	}
	p.Labels = map[string]*string{}
	for k, v := range ls {
		p.Labels[k] = &v
	}
	for _, k := range f.LabelKeys {
		if _, kept := ls[k]; !kept {
			p.Labels[k] = nil
		}
	}
	return p, nil
}

// subPath is the API path of a subscription, or of one of its actions.
func subPath(id string, action ...string) string {
	return "/v1/subscriptions/" + url.PathEscape(id) + strings.Join(append([]string{""}, action...), "/")
}

// refused renders page again with an error the operator can fix: the
// API's own message for a 4xx, else the error page.
func (h handlers) refused(w http.ResponseWriter, p *page, name string, err error) {
	var apiErr *client.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Status < 500:
		p.Error = apiErr.Message
		h.c.render(w, apiErr.Status, name, p)
	case errors.As(err, &apiErr):
		h.c.failAPI(w, p, err)
	default:
		var formErr formError
		if errors.As(err, &formErr) {
			p.Error = formErr.Error()
			h.c.render(w, http.StatusBadRequest, name, p)
			return
		}
		h.c.failAPI(w, p, err)
	}
}

// formError is a mistake in a form found before the API sees it.
type formError struct{ error }

func (h handlers) newForm(w http.ResponseWriter, r *http.Request, p *page) {
	catalog, err := h.catalog(r)
	if err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	p.Title, p.Nav = "New subscription", "subscriptions"
	p.Data = subForm{Checked: map[string]bool{}, Remove: map[string]bool{}, Catalog: catalog}
	h.c.render(w, http.StatusOK, "new", p)
}

// secretData is the page that shows a new signing secret, once.
type secretData struct {
	Sub     client.Subscription
	Created bool
}

func (h handlers) create(w http.ResponseWriter, r *http.Request, p *page) {
	catalog, err := h.catalog(r)
	if err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	f := formFrom(r, "", catalog, subForm{})
	p.Title, p.Nav, p.Data = "New subscription", "subscriptions", f
	in, err := f.input()
	if err != nil {
		h.refused(w, p, "new", formError{err})
		return
	}
	var sub client.Subscription
	if err := h.send(r.Context(), r, http.MethodPost, "/v1/subscriptions", in, &sub); err != nil {
		h.refused(w, p, "new", err)
		return
	}
	p.Title, p.Data, p.Flash = "Subscription created", secretData{Sub: sub, Created: true}, "Subscription created."
	h.c.render(w, http.StatusCreated, "secret", p)
}

// detailData is a subscription's page: what it is, its actions and its
// edit form.
type detailData struct {
	Sub  subRow
	Form subForm
}

// getSub reads one subscription through the API.
func (h handlers) getSub(r *http.Request, id string) (subRow, error) {
	var raw json.RawMessage
	if err := h.call(r.Context(), r, http.MethodGet, subPath(id), &raw); err != nil {
		return subRow{}, err
	}
	sub, m, err := object[client.Subscription](raw)
	if err != nil {
		return subRow{}, err
	}
	return subRow{Subscription: sub, Extra: extras(m, subKnown...)}, nil
}

func (h handlers) subscription(w http.ResponseWriter, r *http.Request, p *page) {
	sub, err := h.getSub(r, r.PathValue("id"))
	if err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	catalog, err := h.catalog(r)
	if err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	p.Title, p.Nav, p.Flash = "Subscription "+sub.URL, "subscriptions", flash(r.URL.Query().Get("done"))
	p.Data = detailData{Sub: sub, Form: formOf(sub.Subscription, catalog)}
	h.c.render(w, http.StatusOK, "subscription", p)
}

func (h handlers) confirmDelete(w http.ResponseWriter, r *http.Request, p *page) {
	sub, err := h.getSub(r, r.PathValue("id"))
	if err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	p.Title, p.Nav, p.Data = "Delete subscription", "subscriptions", sub
	h.c.render(w, http.StatusOK, "delete", p)
}

// edit saves the edit form; a refused form is shown again as sent.
func (h handlers) edit(w http.ResponseWriter, r *http.Request, p *page, id string) {
	sub, err := h.getSub(r, id)
	if err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	catalog, err := h.catalog(r)
	if err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	f := formFrom(r, id, catalog, formOf(sub.Subscription, catalog))
	p.Title, p.Nav, p.Data = "Subscription "+sub.URL, "subscriptions", detailData{Sub: sub, Form: f}
	patch, err := f.patch()
	if err != nil {
		h.refused(w, p, "subscription", formError{err})
		return
	}
	if err := h.send(r.Context(), r, http.MethodPatch, subPath(id), patch, nil); err != nil {
		h.refused(w, p, "subscription", err)
		return
	}
	http.Redirect(w, r, "/ui/subscriptions/"+url.PathEscape(id)+"?done=edit", http.StatusSeeOther)
}

// rotate makes a new signing secret and shows it, this once.
func (h handlers) rotate(w http.ResponseWriter, r *http.Request, p *page, id string) {
	var req client.RotateRequest
	req.Grace = strings.TrimSpace(r.PostFormValue("grace"))
	var sub client.Subscription
	if err := h.send(r.Context(), r, http.MethodPost, subPath(id, "rotate-secret"), req, &sub); err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	p.Title, p.Nav, p.Data, p.Flash = "Secret rotated", "subscriptions", secretData{Sub: sub}, "Secret rotated."
	h.c.render(w, http.StatusOK, "secret", p)
}

// ping sends the test event and shows its outcome.
func (h handlers) ping(w http.ResponseWriter, r *http.Request, p *page, id string) {
	var res client.PingResult
	if err := h.call(r.Context(), r, http.MethodPost, subPath(id, "ping"), &res); err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	p.Title, p.Nav, p.Data = "Ping "+res.Outcome, "subscriptions", res
	h.c.render(w, http.StatusOK, "ping", p)
}
