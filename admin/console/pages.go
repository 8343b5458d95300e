package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robotlab/webhookd/admin/client"
)

// kv is one field of an API object shown as it comes: fields this console
// does not know (added to the API later) are shown this way too.
type kv struct {
	Key, Value string
	// Block is shown preformatted: an object, a list or a long text.
	Block bool
}

// extras returns obj's fields other than known, sorted by name.
func extras(obj map[string]any, known ...string) []kv {
	var out []kv
	for k, v := range obj {
		if slices.Contains(known, k) {
			continue
		}
		out = append(out, field(k, v))
	}
	slices.SortFunc(out, func(a, b kv) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// field formats one JSON value (decoded with UseNumber) for display.
func field(k string, v any) kv {
	switch v := v.(type) {
	case nil:
		return kv{Key: k}
	case string:
		return kv{Key: k, Value: v, Block: len(v) > 120 || strings.Contains(v, "\n")}
	case bool:
		return kv{Key: k, Value: strconv.FormatBool(v)}
	case json.Number:
		if f, err := v.Float64(); err == nil && strings.Contains(k, "rate") && f >= 0 && f <= 1 && strings.Contains(v.String(), ".") {
			return kv{Key: k, Value: strconv.FormatFloat(f*100, 'f', 1, 64) + " %"}
		}
		return kv{Key: k, Value: v.String()}
	default:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return kv{Key: k, Value: fmt.Sprint(v)}
		}
		return kv{Key: k, Value: string(b), Block: true}
	}
}

// object decodes raw twice: into the typed form and into a map for the
// fields the typed form does not have.
func object[T any](raw json.RawMessage) (T, map[string]any, error) {
	var typed T
	var m map[string]any
	if err := json.Unmarshal(raw, &typed); err != nil {
		return typed, nil, fmt.Errorf("console: decode: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return typed, nil, fmt.Errorf("console: decode: %w", err)
	}
	return typed, m, nil
}

// subRow is one subscription on the subscriptions page.
type subRow struct {
	client.Subscription
	Health, Extra []kv
}

var subKnown = []string{"id", "url", "events", "description", "timeout", "active", "disabled_reason",
	"disabled_at", "created_at", "updated_at", "health"}

type subsData struct {
	Subs  []subRow
	Chart chart
}

// flash is the fixed message shown after an action ("?done=pause"); it
// never echoes the request.
func flash(done string) string {
	switch done {
	case "pause":
		return "Subscription paused."
	case "resume":
		return "Subscription resumed."
	case "reenable":
		return "Subscription re-enabled."
	case "redeliver":
		return "Delivery queued again."
	}
	return ""
}

func (h handlers) subscriptions(w http.ResponseWriter, r *http.Request, p *page) {
	var list client.List[json.RawMessage]
	if err := h.call(r.Context(), r, http.MethodGet, "/v1/subscriptions", &list); err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	var d subsData
	for _, raw := range list.Items {
		sub, m, err := object[client.Subscription](raw)
		if err != nil {
			h.c.failAPI(w, p, err)
			return
		}
		row := subRow{Subscription: sub, Extra: extras(m, subKnown...)}
		if hm, ok := m["health"].(map[string]any); ok {
			row.Health = extras(hm)
		}
		d.Subs = append(d.Subs, row)
	}
	slices.SortFunc(d.Subs, func(a, b subRow) int { return strings.Compare(a.URL+a.ID, b.URL+b.ID) })
	var err error
	if d.Chart, err = h.chart(r); err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	p.Title, p.Nav, p.Data, p.Flash = "Subscriptions", "subscriptions", d, flash(r.URL.Query().Get("done"))
	h.c.render(w, http.StatusOK, "subscriptions", p)
}

// subscriptionAction pauses, resumes or re-enables (resumes a disabled)
// subscription through the API, then goes back to the list.
func (h handlers) subscriptionAction(w http.ResponseWriter, r *http.Request, p *page) {
	action := r.PathValue("action")
	apiAction := action
	switch action {
	case "pause", "resume":
	case "reenable": // resume re-enables a subscription the dispatcher disabled
		apiAction = "resume"
	default:
		h.c.fail(w, p, http.StatusNotFound, "No such action.")
		return
	}
	path := "/v1/subscriptions/" + url.PathEscape(r.PathValue("id")) + "/" + apiAction
	if err := h.call(r.Context(), r, http.MethodPost, path, nil); err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	http.Redirect(w, r, "/ui/subscriptions?done="+action, http.StatusSeeOther)
}

// filters are the deliveries view's query fields, passed to the API under
// the same names (type is the event type).
var filterNames = []string{"subscription", "status", "event", "type", "since", "until"}

type deliveriesData struct {
	Filters   map[string]string
	Subs      []client.Subscription
	Statuses  []string
	Items     []client.Delivery
	Next      template.URL // query of the next page (url.Values.Encode), empty on the last
	First     template.URL // query of the first page (the filters)
	Later     bool         // a page after the first
	Filtered  bool
	PageLimit int
}

const pageLimit = 50

// formTime reads a time field: RFC 3339, "2006-01-02T15:04[:05]" (UTC, as
// an <input type=datetime-local> sends it), or a duration before now
// ("-15m").
func formTime(now time.Time, field, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.Format(time.RFC3339Nano), nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t.Format(time.RFC3339Nano), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d < 0 {
		return now.Add(d).UTC().Format(time.RFC3339Nano), nil
	}
	return "", fmt.Errorf("%s: %q is not a time: write 2006-01-02T15:04:05Z, 2006-01-02T15:04 (UTC) or -15m", field, v)
}

func (h handlers) deliveries(w http.ResponseWriter, r *http.Request, p *page) {
	q := r.URL.Query()
	d := deliveriesData{Filters: map[string]string{}, PageLimit: pageLimit,
		Statuses: []string{"pending", "retrying", "succeeded", "failed", "paused", "cancelled", "rejected"}}
	api := url.Values{"limit": {strconv.Itoa(pageLimit)}}
	p.Title, p.Nav, p.Data = "Deliveries", "deliveries", &d
	for _, k := range filterNames {
		v := strings.TrimSpace(q.Get(k))
		d.Filters[k] = v
		if v == "" {
			continue
		}
		d.Filtered = true
		if k == "since" || k == "until" {
			var err error
			if v, err = formTime(h.c.now(), k, v); err != nil {
				p.Error = err.Error()
				break
			}
		}
		api.Set(k, v)
	}
	var subs client.List[client.Subscription]
	if err := h.call(r.Context(), r, http.MethodGet, "/v1/subscriptions", &subs); err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	d.Subs = subs.Items
	slices.SortFunc(d.Subs, func(a, b client.Subscription) int { return strings.Compare(a.URL+a.ID, b.URL+b.ID) })
	if p.Error != "" {
		h.c.render(w, http.StatusBadRequest, "deliveries", p)
		return
	}
	if c := q.Get("cursor"); c != "" {
		api.Set("cursor", c)
	}
	var list client.List[client.Delivery]
	err := h.call(r.Context(), r, http.MethodGet, "/v1/deliveries?"+api.Encode(), &list)
	var apiErr *client.Error
	if errors.As(err, &apiErr) && apiErr.Status < 500 {
		p.Error = apiErr.Message
		h.c.render(w, apiErr.Status, "deliveries", p)
		return
	}
	if err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	d.Items = list.Items
	filters := url.Values{}
	for k, v := range d.Filters {
		if v != "" {
			filters.Set(k, v)
		}
	}
	d.First, d.Later = template.URL(filters.Encode()), q.Get("cursor") != ""
	if list.NextCursor != "" {
		filters.Set("cursor", list.NextCursor)
		d.Next = template.URL(filters.Encode())
	}
	h.c.render(w, http.StatusOK, "deliveries", p)
}

// attemptRow is one attempt of the delivery page.
type attemptRow struct {
	client.Attempt
	Extra []kv
}

type deliveryData struct {
	client.Delivery
	Attempts []attemptRow
	Extra    []kv
}

var (
	deliveryKnown = []string{"id", "event_id", "event", "subscription_id", "url", "status", "reason", "attempts",
		"created_at", "updated_at"}
	attemptKnown = []string{"attempt", "at", "url", "status_code", "duration_ms", "reason", "error", "response", "replica"}
)

func (h handlers) delivery(w http.ResponseWriter, r *http.Request, p *page) {
	var raw json.RawMessage
	if err := h.call(r.Context(), r, http.MethodGet, "/v1/deliveries/"+url.PathEscape(r.PathValue("id")), &raw); err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	del, m, err := object[client.Delivery](raw)
	if err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	d := deliveryData{Delivery: del, Extra: extras(m, deliveryKnown...)}
	rawAttempts, _ := m["attempts"].([]any)
	for i, a := range del.Attempts {
		row := attemptRow{Attempt: a}
		if i < len(rawAttempts) {
			if am, ok := rawAttempts[i].(map[string]any); ok {
				row.Extra = extras(am, attemptKnown...)
			}
		}
		d.Attempts = append(d.Attempts, row)
	}
	p.Title, p.Nav, p.Data, p.Flash = "Delivery "+del.ID, "deliveries", d, flash(r.URL.Query().Get("done"))
	h.c.render(w, http.StatusOK, "delivery", p)
}

func (h handlers) redeliver(w http.ResponseWriter, r *http.Request, p *page) {
	id := r.PathValue("id")
	if err := h.call(r.Context(), r, http.MethodPost, "/v1/deliveries/"+url.PathEscape(id)+"/redeliver", nil); err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	http.Redirect(w, r, "/ui/deliveries/"+url.PathEscape(id)+"?done=redeliver", http.StatusSeeOther)
}

// funcs returns the templates' helpers.
func funcs() template.FuncMap {
	return template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04:05.000Z")
		},
		"join":  func(s []string) string { return strings.Join(s, ", ") },
		"short": func(s string) string { return s[:min(8, len(s))] },
		// query is a URL query: encoded by url.Values, so safe in an href.
		"query": func(k, v string) template.URL { return template.URL(url.Values{k: {v}}.Encode()) },
		"last": func(as []client.Attempt) client.Attempt {
			if len(as) == 0 {
				return client.Attempt{}
			}
			return as[len(as)-1]
		},
	}
}
