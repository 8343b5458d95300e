package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/config"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/subscriptions"
	"github.com/robotlab/webhookd/subscriptions/expr"
)

const (
	minTimeout     = time.Second
	maxTimeout     = 5 * time.Minute
	maxDescription = 1024
	maxEvents      = 64
)

// view is the API form of a subscription; the secret only when withSecret.
func (s *Server) view(sub subscriptions.Subscription, withSecret bool) client.Subscription {
	timeout := sub.Timeout
	if timeout <= 0 {
		timeout = s.cfg.DefaultTimeout
	}
	v := client.Subscription{
		ID: sub.ID, URL: sub.URL, Events: sub.Events, Description: sub.Description, Timeout: timeout.String(),
		Active: sub.Active, MaxInFlight: sub.MaxInFlight, DisabledReason: sub.DisabledReason,
		DisabledAt: sub.DisabledAt, FailingSince: sub.FailingSince, CreatedAt: sub.CreatedAt, UpdatedAt: sub.UpdatedAt,
	}
	if withSecret {
		v.Secret = sub.Secret
	}
	v.RetryPolicy = sub.RetryPolicy
	v.Filter, v.Transform, v.OrderingKey = sub.Filter, sub.Transform, sub.OrderingKey
	v.Labels = sub.Labels
	if len(sub.Headers) > 0 {
		v.Headers = make(map[string]string, len(sub.Headers))
		for _, h := range sub.Headers {
			v.Headers[h.Name] = client.RedactedValue
		}
	}
	for _, p := range sub.PreviousSecrets {
		if s.now().Before(p.ExpiresAt) && p.ExpiresAt.After(v.PreviousSecretExpiresAt) {
			v.PreviousSecretExpiresAt = p.ExpiresAt.UTC()
		}
	}
	if sub.Listen { // no URL, no deliveries: no endpoint health nor stats
		v.Listen, v.ExpiresAt, v.Timeout = true, sub.ExpiresAt, ""
		return v
	}
	if s.deps.Endpoints != nil {
		h := endpointView(s.deps.Endpoints.Health(sub.ID))
		v.Health = &h
	}
	if s.deps.Store != nil {
		v.Stats = s.statsView(sub.ID)
	}
	return v
}

// statsView is a subscription's delivery health from the history of every
// replica; nil when the store cannot be read (logged).
func (s *Server) statsView(id string) *client.DeliveryStats {
	hs, err := s.deps.Store.Health(s.now(), id)
	if err != nil {
		s.log.Error().Err(err).Str("subscription_id", id).Msg("reading delivery health")
		return nil
	}
	h := hs[id]
	st := &client.DeliveryStats{
		Attempts1h: h.Attempts1h, Attempts24h: h.Attempts24h, ConsecutiveFailures: h.ConsecutiveFailures,
		LastStatusCode: h.LastStatusCode, LastReason: h.LastReason, LastAttemptAt: h.LastAttemptAt,
	}
	if r, ok := history.SuccessRate(h.Succeeded1h, h.Attempts1h); ok {
		st.SuccessRate1h = &r
	}
	if r, ok := history.SuccessRate(h.Succeeded24h, h.Attempts24h); ok {
		st.SuccessRate24h = &r
	}
	return st
}

// checkURL applies the API's URL rules: absolute http(s) with a host, not an
// internal address unless allowed (delivery.Guard: the IANA special-purpose
// ranges, IPv4 carried in IPv6 included), whether given as a literal IP or
// as a name that resolves to one now, and no IPv4 address in a legacy
// spelling (2130706433, 0x7f.1, 0177.0.0.1, 127.1), which some resolvers
// turn into an address. A host with non-ASCII characters is judged after the
// IDNA mapping net/http applies before it dials (UTS #46: full-width digits
// and the ideographic and full-width full stops become ASCII, so
// "127。0。0。1" is 127.0.0.1). A name that does not resolve now is
// accepted: the guard checks the address dialled at every connection anyway.
func (s *Server) checkURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil {
		return invalid("url: %q must be an absolute http(s) URL with a host and no credentials", raw)
	}
	host := u.Hostname()
	if !isASCII(host) {
		ascii, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return invalid("url: host %q is not a valid internationalised domain name: %v", host, err)
		}
		host = ascii
	}
	ip, err := netip.ParseAddr(host)
	if err == nil && !s.guard.Allowed(ip) {
		return invalid("url: %s is an internal address; deliveries to it are refused: %s", ip, allowHint(ip))
	}
	// A host whose last label is a number is an IPv4 address to a URL parser
	// (WHATWG URL, "ends in a number"): no top-level domain is numeric.
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	last := strings.ToLower(labels[len(labels)-1])
	if err != nil && (last != "" && strings.Trim(last, "0123456789") == "" ||
		strings.HasPrefix(last, "0x") && strings.Trim(last[2:], "0123456789abcdef") == "") {
		return invalid("url: host %q is an IPv4 address in a non-standard spelling; write it as four decimal numbers, a.b.c.d", host)
	}
	if err != nil {
		rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		defer cancel()
		addrs, lerr := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		if lerr != nil {
			return nil // not resolvable now: the guard judges the address dialled
		}
		for _, a := range addrs {
			if !s.guard.Allowed(a) {
				a = a.Unmap()
				return invalid("url: %s resolves to %s, an internal address; deliveries to it are refused: %s", host, a, allowHint(a))
			}
		}
	}
	return nil
}

// resolveTimeout bounds the name lookup of a subscription URL's host.
const resolveTimeout = 3 * time.Second

// allowHint says how to let deliveries reach an internal address: the whole
// of IPv4 loopback for a local receiver, else the address alone.
func allowHint(ip netip.Addr) string {
	p := netip.PrefixFrom(ip.WithZone(""), ip.BitLen())
	if ip.Is4() && ip.IsLoopback() {
		p = netip.MustParsePrefix("127.0.0.0/8")
	}
	return fmt.Sprintf("restart webhookd with `--allow-targets %s` to allow it", p)
}

// isASCII reports whether v holds ASCII characters only.
func isASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func (s *Server) checkEvents(events []string) error {
	if len(events) == 0 {
		return invalid("events: want at least one event type or pattern")
	}
	if len(events) > maxEvents {
		return invalid("events: at most %d entries", maxEvents)
	}
	for _, e := range events {
		if !subscriptions.ValidPattern(e) {
			return invalid("events: %q is not an event type or pattern (tokens separated by '.', wildcards '*' and '>')", e)
		}
		if !strings.ContainsAny(e, "*>") && !s.catalog[e] {
			return invalid("events: %q is not in the catalog (GET /v1/event-types)", e)
		}
	}
	return nil
}

// setHeaders sets the custom headers of set, then applies patch: a value
// sets the header, nil removes it. Each header is checked before any is
// applied; the store checks the whole (count, size) on write.
func setHeaders(sub *subscriptions.Subscription, set map[string]string, patch map[string]*string) error {
	if len(set)+len(patch) > 4*subscriptions.MaxHeaders {
		return invalid("headers: %d given: want at most %d", len(set)+len(patch), subscriptions.MaxHeaders)
	}
	for _, name := range slices.Sorted(maps.Keys(set)) {
		if err := subscriptions.ValidateHeader(name, set[name]); err != nil {
			return invalidSubscription(err)
		}
		sub.SetHeader(name, set[name])
	}
	for _, name := range slices.Sorted(maps.Keys(patch)) {
		v := patch[name]
		if v == nil {
			sub.RemoveHeader(name)
			continue
		}
		if err := subscriptions.ValidateHeader(name, *v); err != nil {
			return invalidSubscription(err)
		}
		sub.SetHeader(name, *v)
	}
	return nil
}

// checkExprs compiles the expressions given (nil: not given, "": none)
// with the server's compiler, so that one which does not compile or gives
// the wrong type is refused with one line naming the field and position.
func (s *Server) checkExprs(filter, transform, key *string) error {
	for _, e := range []struct {
		field expr.Field
		src   *string
	}{{expr.Filter, filter}, {expr.Transform, transform}, {expr.OrderingKey, key}} {
		if e.src == nil || *e.src == "" {
			continue
		}
		if _, err := s.exprs.CompileUncached(e.field, *e.src); err != nil {
			return invalid("%v", err)
		}
	}
	return nil
}

func parseTimeout(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < minTimeout || d > maxTimeout {
		return 0, invalid("timeout: %q must be a duration from %s to %s", v, minTimeout, maxTimeout)
	}
	return d, nil
}

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request) error {
	var in client.SubscriptionInput
	if err := decode(r, 64<<10, &in); err != nil {
		return err
	}
	if err := s.checkURL(r.Context(), in.URL); err != nil {
		return err
	}
	if err := s.checkEvents(in.Events); err != nil {
		return err
	}
	if err := s.checkTeamEvents(r, in.Events); err != nil {
		return err
	}
	timeout, err := parseTimeout(in.Timeout)
	if err != nil {
		return err
	}
	if len(in.Description) > maxDescription {
		return invalid("description: at most %d bytes", maxDescription)
	}
	policy, err := subscriptions.ParseRetryPolicy(in.RetryPolicy)
	if err != nil {
		return invalidSubscription(err)
	}
	if err := s.checkExprs(&in.Filter, &in.Transform, &in.OrderingKey); err != nil {
		return err
	}
	labels, err := createLabels(r, in.Labels)
	if err != nil {
		return err
	}
	sub := subscriptions.Subscription{
		URL: in.URL, Events: in.Events, Description: in.Description, Timeout: timeout, MaxInFlight: in.MaxInFlight,
		RetryPolicy: policy, Filter: in.Filter, Transform: in.Transform, OrderingKey: in.OrderingKey,
		Labels: labels,
	}
	if err := s.fitsRetention(sub.RetryPolicy, sub.Timeout); err != nil {
		return err
	}
	if err := setHeaders(&sub, in.Headers, nil); err != nil {
		return err
	}
	sub, err = s.deps.Subs.Create(r.Context(), sub)
	if errors.Is(err, subscriptions.ErrInvalid) {
		return invalidSubscription(err)
	}
	if err != nil {
		return err
	}
	s.log.Info().Str("subscription_id", sub.ID).Str("host", delivery.Host(sub.URL)).Strs("events", sub.Events).Msg("subscription created")
	writeJSON(w, http.StatusCreated, s.view(sub, true))
	return nil
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request) error {
	items := []client.Subscription{}
	for _, sub := range s.deps.Subs.List() {
		if visible(r, sub) {
			items = append(items, s.view(sub, false))
		}
	}
	writeJSON(w, http.StatusOK, client.List[client.Subscription]{Items: items})
	return nil
}

func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "subscription")
	if err != nil {
		return err
	}
	sub, ok := s.deps.Subs.Get(id)
	if !ok || !visible(r, sub) {
		return notFound("subscription", id)
	}
	v := s.view(sub, false)
	if sub.OrderingKey != "" && s.deps.OrderedKeys != nil {
		keys := s.deps.OrderedKeys(sub.ID, orderedKeysShown)
		v.OrderedKeys = &keys
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// orderedKeysShown is how many of an ordered subscription's longest keys
// its get shows.
const orderedKeysShown = 10

// update runs a compare-and-set update and maps the store's errors. A
// subscription of another team is not found, checked on the very revision
// updated.
func (s *Server) update(r *http.Request, fn func(*subscriptions.Subscription) error) (subscriptions.Subscription, error) {
	id, err := pathID(r, "subscription")
	if err != nil {
		return subscriptions.Subscription{}, err
	}
	sub, err := s.deps.Subs.Update(r.Context(), id, func(sub *subscriptions.Subscription) error {
		if !visible(r, *sub) {
			return notFound("subscription", id)
		}
		if sub.Listen {
			return errListenerReadOnly
		}
		return fn(sub)
	})
	switch {
	case errors.Is(err, errListenerReadOnly):
		return sub, listenerReadOnly(id)
	case errors.Is(err, subscriptions.ErrNotFound):
		return sub, notFound("subscription", id)
	case errors.Is(err, subscriptions.ErrConflict):
		return sub, apiError(http.StatusConflict, client.CodeConflict, "subscription %q was changed concurrently; read it and try again", id)
	case errors.Is(err, subscriptions.ErrInvalid):
		return sub, invalidSubscription(err)
	}
	return sub, err
}

func (s *Server) updateSubscription(w http.ResponseWriter, r *http.Request) error {
	var p client.SubscriptionPatch
	if err := decode(r, 64<<10, &p); err != nil {
		return err
	}
	if p.URL != nil {
		if err := s.checkURL(r.Context(), *p.URL); err != nil {
			return err
		}
	}
	if p.Events != nil {
		if err := s.checkEvents(*p.Events); err != nil {
			return err
		}
		if err := s.checkTeamEvents(r, *p.Events); err != nil {
			return err
		}
	}
	var timeout time.Duration
	if p.Timeout != nil {
		var err error
		if timeout, err = parseTimeout(*p.Timeout); err != nil {
			return err
		}
	}
	if p.Description != nil && len(*p.Description) > maxDescription {
		return invalid("description: at most %d bytes", maxDescription)
	}
	var policy string
	if p.RetryPolicy != nil {
		var err error
		if policy, err = subscriptions.ParseRetryPolicy(*p.RetryPolicy); err != nil {
			return invalidSubscription(err)
		}
	}
	if err := s.checkExprs(p.Filter, p.Transform, p.OrderingKey); err != nil {
		return err
	}
	if err := checkLabelPatch(r, p.Labels); err != nil {
		return err
	}
	sub, err := s.update(r, func(sub *subscriptions.Subscription) error {
		if err := setHeaders(sub, nil, p.Headers); err != nil {
			return err
		}
		for _, e := range []struct{ to, from *string }{
			{&sub.Filter, p.Filter}, {&sub.Transform, p.Transform}, {&sub.OrderingKey, p.OrderingKey},
		} {
			if e.from != nil {
				*e.to = *e.from
			}
		}
		patchLabels(sub, p.Labels)
		if p.RetryPolicy != nil {
			sub.RetryPolicy = policy
		}
		if p.URL != nil {
			sub.URL = *p.URL
		}
		if p.Events != nil {
			sub.Events = *p.Events
		}
		if p.Description != nil {
			sub.Description = *p.Description
		}
		if p.Timeout != nil {
			sub.Timeout = timeout
		}
		if p.MaxInFlight != nil {
			sub.MaxInFlight = *p.MaxInFlight
		}
		if p.RetryPolicy != nil || p.Timeout != nil {
			if err := s.fitsRetention(sub.RetryPolicy, sub.Timeout); err != nil {
				return err
			}
		}
		switch {
		case p.Active == nil:
		case *p.Active:
			sub.Resume()
		default:
			sub.Active = false
		}
		return nil
	})
	if err != nil {
		return err
	}
	if p.Active != nil && *p.Active {
		s.deps.Queue.Resume(sub.ID)
	}
	writeJSON(w, http.StatusOK, s.view(sub, false))
	return nil
}

func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "subscription")
	if err != nil {
		return err
	}
	err = s.deps.Subs.DeleteIf(r.Context(), id, func(sub subscriptions.Subscription) error {
		if !visible(r, sub) {
			return notFound("subscription", id)
		}
		return nil
	})
	if errors.Is(err, subscriptions.ErrNotFound) {
		return notFound("subscription", id)
	}
	if err != nil {
		return err
	}
	s.log.Info().Str("subscription_id", id).Msg("subscription deleted")
	// Jobs still queued are cancelled by the workers; the ones held while
	// paused are no longer queued, so they are cancelled here.
	// The subscription is gone: finish the job even if the client hangs up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Minute)
	defer cancel()
	if _, err := s.deps.Queue.CancelHeld(ctx, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// maxGrace bounds the grace period a rotation may ask for.
const maxGrace = 30 * 24 * time.Hour

// rotateSecret issues a new secret. The previous ones keep signing for the
// grace period (the body's "grace", else --secret-grace), never longer than
// they already would: with grace 0 only the new secret signs.
func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request) error {
	var in client.RotateRequest
	if err := decodeOptional(r, 4<<10, &in); err != nil {
		return err
	}
	grace := s.cfg.SecretGrace
	if in.Grace != "" {
		d, err := time.ParseDuration(in.Grace)
		if err != nil || d < 0 || d > maxGrace {
			return invalid("grace: %q must be a duration from 0s (end it at once) to %s", in.Grace, maxGrace)
		}
		grace = d
	}
	secret, err := signature.NewSecret()
	if err != nil {
		return err
	}
	now := s.now().UTC()
	ends := now.Add(grace)
	sub, err := s.update(r, func(sub *subscriptions.Subscription) error {
		var kept []subscriptions.PreviousSecret
		if grace > 0 {
			kept = append(kept, subscriptions.PreviousSecret{Secret: sub.Secret, ExpiresAt: ends})
			for _, p := range sub.PreviousSecrets {
				if now.Before(p.ExpiresAt) {
					kept = append(kept, subscriptions.PreviousSecret{Secret: p.Secret, ExpiresAt: minTime(p.ExpiresAt, ends)})
				}
			}
		}
		sub.Secret, sub.PreviousSecrets = secret, kept
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info().Str("subscription_id", sub.ID).Dur("grace", grace).Time("grace_ends_at", ends).Msg("subscription secret rotated")
	writeJSON(w, http.StatusOK, s.view(sub, true))
	return nil
}

// expireSecret ends a rotation's grace period now: the previous secrets
// stop signing, only the current one is left. It is idempotent.
func (s *Server) expireSecret(w http.ResponseWriter, r *http.Request) error {
	var had int
	sub, err := s.update(r, func(sub *subscriptions.Subscription) error {
		had = len(sub.PreviousSecrets)
		sub.PreviousSecrets = nil
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info().Str("subscription_id", sub.ID).Int("expired", had).Msg("previous subscription secrets expired")
	writeJSON(w, http.StatusOK, s.view(sub, false))
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// setActive returns the pause (false) or resume (true) handler. Resuming
// re-enables a disabled subscription too (clearing its reason) and sends the
// deliveries held meanwhile.
func (s *Server) setActive(active bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		sub, err := s.update(r, func(sub *subscriptions.Subscription) error {
			if active {
				sub.Resume()
			} else {
				sub.Active = false
			}
			return nil
		})
		if err != nil {
			return err
		}
		s.log.Info().Str("subscription_id", sub.ID).Bool("active", active).Msg("subscription paused or resumed")
		if active {
			s.deps.Queue.Resume(sub.ID)
		}
		writeJSON(w, http.StatusOK, s.view(sub, false))
		return nil
	}
}

// fitsRetention refuses a subscription's own retry policy that could still
// be retrying when its delivery's first records expire (--retention): the
// policy's delays plus every attempt's timeout must end before it, as
// webhookd checks for the default policy at start.
func (s *Server) fitsRetention(policy string, timeout time.Duration) error {
	if policy == "" || s.cfg.Retention <= 0 {
		return nil
	}
	b, err := config.ParseBackoff(policy)
	if err != nil {
		return invalid("retry_policy %q: %v", policy, err)
	}
	if timeout <= 0 {
		timeout = s.cfg.DefaultTimeout
	}
	if longest := b.Longest() + time.Duration(b.Attempts())*timeout; longest >= s.cfg.Retention {
		return invalid("retry_policy %q: its longest schedule, %s (the delays plus %d attempts of the %s timeout), must end before the server's --retention, %s",
			policy, longest, b.Attempts(), timeout, s.cfg.Retention)
	}
	return nil
}
