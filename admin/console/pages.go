package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robotlab/webhookd/admin/client"
)

// kv is one field of an API object this console shows as it comes:
// fields it does not know (added to the API later) are shown this way, with
// a label made of the field's name and a value formatted for people.
type kv struct {
	Key, Value string
	// Block is shown preformatted: a long or multi-line text.
	Block bool
	// Children are the fields of an object, or the items of a list.
	Children []kv
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

// field formats one JSON value (decoded with UseNumber) for display: a
// time to the second, a rate as a percentage, an object as its fields.
func field(k string, v any) kv {
	f := kv{Key: label(k)}
	switch v := v.(type) {
	case nil:
	case string:
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			f.Value = exact(t)
			break
		}
		f.Value, f.Block = v, len(v) > 120 || strings.Contains(v, "\n")
	case bool:
		f.Value = "no"
		if v {
			f.Value = "yes"
		}
	case json.Number:
		f.Value = v.String()
		if r, err := v.Float64(); err == nil && strings.Contains(k, "rate") && r >= 0 && r <= 1 && strings.Contains(v.String(), ".") {
			f.Value = strconv.FormatFloat(r*100, 'f', 2, 64) + "%"
		}
	case map[string]any:
		f.Children = extras(v)
	case []any:
		var scalars []string
		for i, item := range v {
			c := field(strconv.Itoa(i+1), item)
			if c.Children != nil || c.Block {
				scalars = nil
				f.Children = nil
				for j, it := range v {
					f.Children = append(f.Children, field(strconv.Itoa(j+1), it))
				}
				break
			}
			scalars = append(scalars, c.Value)
		}
		if f.Children == nil {
			f.Value = strings.Join(scalars, ", ")
		}
	default:
		f.Value = fmt.Sprint(v)
	}
	return f
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

// subRow is one subscription, with the fields this console does not know.
type subRow struct {
	client.Subscription
	Extra []kv
}

var subKnown = []string{"id", "url", "events", "description", "timeout", "active", "disabled_reason",
	"disabled_at", "created_at", "updated_at", "health", "stats", "max_in_flight", "headers", "retry_policy",
	"previous_secret_expires_at", "failing_since", "secret", "filter", "transform", "ordering_key", "labels"}

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
	case "edit":
		return "Subscription saved."
	case "delete":
		return "Subscription deleted."
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
		d.Subs = append(d.Subs, subRow{Subscription: sub, Extra: extras(m, subKnown...)})
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

// subscriptionAction runs one of a subscription's buttons: pause, resume
// or re-enable (resume a disabled subscription), then back to the page
// the button was on; edit, delete, rotate (the secret) and ping.
func (h handlers) subscriptionAction(w http.ResponseWriter, r *http.Request, p *page) {
	id, action := r.PathValue("id"), r.PathValue("action")
	apiAction := action
	switch action {
	case "pause", "resume":
	case "reenable": // resume re-enables a subscription the dispatcher disabled
		apiAction = "resume"
	case "edit":
		h.edit(w, r, p, id)
		return
	case "rotate":
		h.rotate(w, r, p, id)
		return
	case "ping":
		h.ping(w, r, p, id)
		return
	case "delete":
		if r.PostFormValue("confirm") != "yes" {
			h.c.fail(w, p, http.StatusBadRequest, "Delete needs its confirmation: use the Delete button of the subscription's page.")
			return
		}
		if err := h.call(r.Context(), r, http.MethodDelete, subPath(id), nil); err != nil {
			h.c.failAPI(w, p, err)
			return
		}
		http.Redirect(w, r, "/ui/subscriptions?done=delete", http.StatusSeeOther)
		return
	default:
		h.c.fail(w, p, http.StatusNotFound, "No such action.")
		return
	}
	if err := h.call(r.Context(), r, http.MethodPost, subPath(id, apiAction), nil); err != nil {
		h.c.failAPI(w, p, err)
		return
	}
	if r.PostFormValue("from") == "detail" {
		http.Redirect(w, r, "/ui/subscriptions/"+url.PathEscape(id)+"?done="+action, http.StatusSeeOther)
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
	Headers []kv
	Extra   []kv
	// Newest is the last attempt: its headers show unfolded.
	Newest bool
}

type deliveryData struct {
	client.Delivery
	// Body is the payload, indented.
	Body     string
	Attempts []attemptRow
	Extra    []kv
	// Redeliver says whether the API would send it again; NoRedeliver why not.
	Redeliver   bool
	NoRedeliver string
}

var (
	deliveryKnown = []string{"id", "event_id", "event", "subscription_id", "url", "status", "reason", "attempts",
		"created_at", "updated_at", "payload", "payload_note"}
	attemptKnown = []string{"attempt", "at", "url", "status_code", "duration_ms", "reason", "error", "response", "replica",
		"request_headers"}
)

// pingEvent is the type of a test ping's delivery: sent once, never again.
const pingEvent = "webhook.ping"

// redeliverable says whether the API would send d again, and why not: the
// same rules as the dispatcher's requeue (a final or held delivery, not a
// rejected event, to a subscription that still exists). One rule cannot be
// seen from here: the job must still be kept in AUDIT; when it is not, the
// API refuses with a message the console shows.
func redeliverable(d client.Delivery, subExists bool) (bool, string) {
	switch {
	case d.Event == pingEvent:
		return false, "A test ping is sent once and never redelivered: ping the subscription again instead."
	case d.Status == "rejected":
		return false, "A rejected event is not delivered: there is nothing to send."
	case d.Status == "succeeded":
		return false, "This delivery succeeded: its job is not kept, so it cannot be sent again."
	case d.Status != "failed" && d.Status != "cancelled" && d.Status != "paused":
		return false, "This delivery is still queued: it will be attempted without a redelivery."
	case !subExists:
		return false, "Its subscription was deleted: there is nowhere to send it."
	}
	return true, ""
}

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
	if len(del.Payload) > 0 {
		var buf bytes.Buffer
		if json.Indent(&buf, del.Payload, "", "  ") == nil {
			d.Body = buf.String()
		} else {
			d.Body = string(del.Payload)
		}
	}
	subErr := h.call(r.Context(), r, http.MethodGet, subPath(del.SubscriptionID), nil)
	var apiErr *client.Error
	if subErr != nil && !(errors.As(subErr, &apiErr) && apiErr.Status == http.StatusNotFound) {
		h.c.failAPI(w, p, subErr)
		return
	}
	d.Redeliver, d.NoRedeliver = redeliverable(del, subErr == nil)
	rawAttempts, _ := m["attempts"].([]any)
	for i, a := range del.Attempts {
		row := attemptRow{Attempt: a, Newest: i == len(del.Attempts)-1}
		for _, name := range slices.Sorted(maps.Keys(a.RequestHeaders)) {
			row.Headers = append(row.Headers, kv{Key: name, Value: a.RequestHeaders[name]})
		}
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

// funcs returns the templates' helpers; now is the console's clock.
func funcs(now func() time.Time) template.FuncMap {
	return template.FuncMap{
		"exact":  exact,
		"ago":    func(t time.Time) string { return ago(now(), t) },
		"rate":   rate,
		"label":  label,
		"plural": plural,
		"join":   func(s []string) string { return strings.Join(s, ", ") },
		// seg is one path segment, escaped: an event id may hold a slash.
		"seg":   url.PathEscape,
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
