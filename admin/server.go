package admin

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/admin/console"
	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/delivery/endpoint"
	"github.com/robotlab/webhookd/delivery/history"
	"github.com/robotlab/webhookd/delivery/schema"
	"github.com/robotlab/webhookd/dispatcher"
	"github.com/robotlab/webhookd/internal/boltfile"
	"github.com/robotlab/webhookd/internal/httplimit"
	"github.com/robotlab/webhookd/internal/throttle"
	"github.com/robotlab/webhookd/internal/tracing"
	"github.com/robotlab/webhookd/subscriptions"
	"github.com/robotlab/webhookd/subscriptions/expr"
)

// Config configures the admin API.
type Config struct {
	// Token is the bearer token every /v1 request must carry.
	Token string
	// Replica is this replica's id, shown by /v1/status.
	Replica string
	// EventTypes is the catalog.
	EventTypes []string
	// Schemas are the event schemas GET /v1/event-types shows (nil: none).
	Schemas *schema.Set
	// AllowTargets are internal prefixes subscriptions may point at.
	AllowTargets []netip.Prefix
	// DefaultTimeout is shown for subscriptions without their own timeout.
	DefaultTimeout time.Duration
	// SecretGrace is how long a rotated-out secret keeps signing (default 24h).
	SecretGrace time.Duration
	// Retention (--retention) is how long a delivery's records are kept: a
	// subscription's own retry policy must end before it (0: no check).
	Retention time.Duration
	// MaxEventBytes bounds the data of an event published over HTTP (default 1 MiB).
	MaxEventBytes int
	// EventIDSalt is EVENTS's salt (jetstream.EventSalt): the id an event
	// published without one gets, as the router derives it.
	EventIDSalt string
	// EventRetention is --event-retention, how long EVENTS keeps a routed
	// event: the message log's notes name it.
	EventRetention time.Duration
	// MetricsRequireToken makes GET /metrics ask for Token too.
	MetricsRequireToken bool
	// Throttle sets the budgets of wrong tokens, per client address and
	// over all, shared by the bearer check and the console's login (zero:
	// throttle's defaults, 10 at once then 1 a second per address, 100 at
	// once then 20 a second over all).
	Throttle throttle.Config
	// SessionTTL is how long a console login lasts (default 12h).
	SessionTTL time.Duration
	// ListenGrace is how long a listen subscription outlives its last
	// stream (default and at most MaxListenGrace): its stream moves the
	// expiry on every third of it.
	ListenGrace time.Duration
	// ListenBuffer is how many deliveries a listener's stream holds while
	// its client is slow to read; beyond it they are dropped and counted
	// (default 256).
	ListenBuffer int
	// MaxPublicPerClient caps the requests one client address may have in
	// flight on the paths that need no credential (/ui/login, /ui/static/,
	// /healthz, /readyz, /metrics, /v1/openapi.json, /): default 8,
	// negative for no cap.
	MaxPublicPerClient int
}

// Deps are the API's collaborators.
type Deps struct {
	JS   natsjs.JetStream
	Subs *subscriptions.Store
	// Store reads the delivery history: this replica's index, or with
	// --history=false a history.Remote that asks a replica which indexes.
	Store history.Reader
	// Queue carries out redeliver, replay, resume and the cancelling of
	// held deliveries on delete.
	Queue *dispatcher.Queue
	// Endpoints tells this replica's view of each endpoint's health.
	Endpoints *endpoint.Endpoints
	// Ready reports whether the replica can serve (nil error) for /readyz.
	Ready func() error
	// Counters returns this replica's pipeline counters for /v1/status.
	Counters func() map[string]uint64
	// OrderedKeys returns an ordered subscription's backlog on this
	// replica, with the heads of the n longest keys (optional).
	OrderedKeys func(subID string, n int) client.OrderedKeys
	// Metrics serves GET /metrics (nil: it answers 404), without a token
	// unless Config.MetricsRequireToken.
	Metrics http.Handler
	// Pinger makes the attempt of a test ping; Recorder writes its audit
	// record. Without them ping answers 503.
	Pinger   Pinger
	Recorder *history.Recorder
	// Sessions is the bucket of console sessions ended by logout
	// (jetstream.BucketRevokedSessions), shared by every replica. Without
	// it a logout holds on this replica only.
	Sessions natsjs.KeyValue
	// Exprs compiles subscriptions' expressions; the dispatcher shares it
	// (nil: the server makes its own).
	Exprs *expr.Compiler
	// Tracer traces events published through the API (nil: off).
	Tracer *tracing.Tracer
	// Tokens is the bucket of team tokens (jetstream.BucketTeamTokens),
	// read by every replica at each request. Without it only the
	// operator's token is accepted and /v1/tokens answers 503.
	Tokens natsjs.KeyValue
}

// Server is the HTTP surface of one replica.
type Server struct {
	cfg     Config
	deps    Deps
	log     zerolog.Logger
	now     func() time.Time
	catalog map[string]bool
	guard   *delivery.Guard
	token   [32]byte
	console *console.Console
	fails   *throttle.Failures
	public  *httplimit.PerClient
	exprs   *expr.Compiler
	streams *streams
}

// New returns the server; Handler serves it.
func New(cfg Config, deps Deps, log zerolog.Logger) (*Server, error) {
	if cfg.Token == "" {
		return nil, errors.New("admin: a token is required")
	}
	if cfg.SecretGrace <= 0 {
		cfg.SecretGrace = 24 * time.Hour
	}
	if cfg.MaxEventBytes <= 0 {
		cfg.MaxEventBytes = 1 << 20
	}
	if cfg.MaxPublicPerClient == 0 {
		cfg.MaxPublicPerClient = 8
	}
	if cfg.ListenGrace <= 0 || cfg.ListenGrace > MaxListenGrace {
		cfg.ListenGrace = MaxListenGrace
	}
	if cfg.ListenBuffer <= 0 {
		cfg.ListenBuffer = 256
	}
	catalog := map[string]bool{}
	for _, t := range cfg.EventTypes {
		catalog[t] = true
	}
	fails := throttle.New(cfg.Throttle)
	s := &Server{
		cfg: cfg, deps: deps, log: log.With().Str("component", "admin").Logger(), now: time.Now,
		catalog: catalog, guard: delivery.NewGuard(cfg.AllowTargets), token: sha256.Sum256([]byte(cfg.Token)),
		fails: fails, public: httplimit.NewPerClient(cfg.MaxPublicPerClient), streams: newStreams(),
	}
	ccfg := console.Config{Token: cfg.Token, SessionTTL: cfg.SessionTTL, Failures: fails}
	if deps.Sessions != nil {
		ccfg.Revocations = kvRevocations{kv: deps.Sessions}
	}
	if deps.Tokens != nil {
		ccfg.TeamLogin = s.consoleLogin
	}
	ui, err := console.New(ccfg, log)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	exprs := deps.Exprs
	if exprs == nil {
		if exprs, err = expr.NewCompiler(); err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
	}
	s.console, s.exprs = ui, exprs
	return s, nil
}

// handlerFunc is a handler whose error becomes the answer: a *client.Error
// as is, anything else as a 500 whose detail only goes to the log.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	return s.logged(s.cleanPaths(s.routes()))
}

// routes registers every route on a new mux.
func (s *Server) routes() *routeMux {
	mux := newRouteMux()
	// Paths anyone may call are capped per client address (public).
	public := s.public.Wrap
	mux.Handle("GET /healthz", public(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})))
	mux.Handle("GET /readyz", public(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err := s.deps.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})))
	mux.Handle("GET /metrics", public(s.metrics()))
	v1 := map[string]handlerFunc{
		"POST /v1/subscriptions":                    s.createSubscription,
		"GET /v1/subscriptions":                     s.listSubscriptions,
		"GET /v1/subscriptions/{id}":                s.getSubscription,
		"PATCH /v1/subscriptions/{id}":              s.updateSubscription,
		"DELETE /v1/subscriptions/{id}":             s.deleteSubscription,
		"POST /v1/subscriptions/{id}/rotate-secret": s.rotateSecret,
		"POST /v1/subscriptions/{id}/expire-secret": s.expireSecret,
		"POST /v1/subscriptions/{id}/ping":          s.ping,
		"POST /v1/subscriptions/try":                s.try,
		"POST /v1/subscriptions/{id}/pause":         s.setActive(false),
		"POST /v1/subscriptions/{id}/resume":        s.setActive(true),
		"GET /v1/deliveries":                        s.listDeliveries,
		"GET /v1/deliveries/{id}":                   s.getDelivery,
		"POST /v1/deliveries/{id}/redeliver":        s.redeliver,
		"POST /v1/deliveries/replay":                s.replay,
		"GET /v1/replays/{id}":                      s.getReplay,
		"POST /v1/events":                           s.publish,
		"GET /v1/events":                            s.listEvents,
		"GET /v1/events/{id}":                       s.getEvent,
		"GET /v1/event-types":                       s.eventTypes,
		"GET /v1/status":                            s.status,
		"POST /v1/tokens":                           s.createToken,
		"GET /v1/tokens":                            s.listTokens,
		"DELETE /v1/tokens/{name}":                  s.deleteToken,
		"POST /v1/listeners":                        s.createListener,
		"GET /v1/listeners/{id}/events":             s.streamListener,
	}
	for pattern, h := range v1 {
		mux.Handle(pattern, s.authorized(h))
	}
	mux.Handle("/v1/", s.authorized(func(http.ResponseWriter, *http.Request) error {
		return apiError(http.StatusNotFound, client.CodeNotFound, "no such route")
	}))
	mux.Handle("GET /v1/openapi.json", public(http.HandlerFunc(serveOpenAPI)))
	mux.Handle("GET /{$}", public(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther) // a browser pointed at the server finds the console
	})))
	ui := s.console.Handler(s.cleanPaths(mux.ServeMux))
	mux.Handle("/ui/", ui)
	mux.Handle("/ui/login", public(ui))
	mux.Handle("/ui/static/", public(ui))
	return mux
}

// metrics returns the /metrics handler, behind the token when configured;
// without Deps.Metrics it answers 404.
func (s *Server) metrics() http.Handler {
	h := s.deps.Metrics
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, apiError(http.StatusNotFound, client.CodeNotFound, "no metrics on this server"))
		})
	}
	if !s.cfg.MetricsRequireToken {
		return h
	}
	return s.authorized(func(w http.ResponseWriter, r *http.Request) error {
		h.ServeHTTP(w, r)
		return nil
	})
}

// cleanPaths answers 404 for an API path with an empty or dot segment
// ("/v1/subscriptions//pause", "/v1/subscriptions/./pause"), where the mux
// would redirect to another route: such a path names no id.
func (s *Server) cleanPaths(next http.Handler) http.Handler {
	noRoute := s.authenticated(func(http.ResponseWriter, *http.Request) error {
		return apiError(http.StatusNotFound, client.CodeNotFound, "no such route: empty or dot path segment")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		if strings.HasPrefix(p, "/v1/") {
			clean := path.Clean(p)
			if strings.HasSuffix(p, "/") {
				clean += "/"
			}
			if clean != p {
				noRoute.ServeHTTP(w, r)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// pathID returns the {id} of the request's path. Subscription and delivery
// ids are UUIDs: anything else (wildcards, dots, spaces, slashes, empty or
// long strings) answers 404 before a store sees it.
func pathID(r *http.Request, what string) (string, error) {
	id := r.PathValue("id")
	if len(id) != 36 || uuid.Validate(id) != nil {
		if len(id) > 40 {
			id = strings.ToValidUTF8(id[:40], "") + "…"
		}
		return "", apiError(http.StatusNotFound, client.CodeNotFound, "%s %q not found: ids are UUIDs", what, id)
	}
	return id, nil
}

// authorized is authenticated with the route's scope (routeScopes): a
// team token on a route that is not scopeTeam is answered 403.
func (s *Server) authorized(h handlerFunc) http.Handler {
	return s.authenticated(func(w http.ResponseWriter, r *http.Request) error {
		if !allowed(r) {
			return operatorOnly(r)
		}
		return h(w, r)
	})
}

// authenticated checks the bearer token, the operator's or a team's
// (teamToken), in constant time, then runs h with the principal in the
// request's context (teamOf). The console's calls for a team session name
// their token by its subject instead (console.Subject). A
// client address that has sent too many wrong tokens lately (or everyone,
// when the global budget is spent) is answered 429 without a check; each
// wrong token is logged at warn with the address, never the token. The
// console's own calls for a logged-in operator are not throttled.
func (s *Server) authenticated(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr, inProcess := throttle.Client(r.RemoteAddr), console.InProcess(r.Context())
		if wait := s.fails.Wait(addr); wait > 0 && !inProcess {
			secs := throttle.RetryAfter(wait)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeError(w, apiError(http.StatusTooManyRequests, client.CodeTooManyRequests,
				"too many wrong tokens from this address; retry in %d s", secs))
			return
		}
		p, ok, err := s.principal(r, inProcess)
		if err != nil {
			s.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("team token check failed")
			writeError(w, apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "cannot check the token now: try again"))
			return
		}
		if !ok {
			given, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if bearer && given != "" && !inProcess { // a token was tried: a guess
				exhausted := s.fails.Fail(addr)
				s.log.Warn().Str("remote_addr", r.RemoteAddr).Str("method", r.Method).Str("path", r.URL.Path).
					Bool("throttled", exhausted).Msg("wrong bearer token")
			}
			if inProcess && console.Subject(r.Context()) != "" {
				writeError(w, apiError(http.StatusUnauthorized, client.CodeUnauthorized, "the team token of this console session was deleted: log in again"))
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="webhookd"`)
			writeError(w, apiError(http.StatusUnauthorized, client.CodeUnauthorized, "missing or wrong bearer token"))
			return
		}
		r = r.WithContext(withPrincipal(r.Context(), p))
		err = h(w, r)
		if err == nil {
			return
		}
		var apiErr *client.Error
		if errors.Is(err, history.ErrRebuilding) || errors.Is(err, boltfile.ErrDamaged) {
			apiErr = apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "%s", rebuildingMessage)
		} else if errors.Is(err, history.ErrNoIndexer) {
			apiErr = apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "%s", err.Error())
		} else if !errors.As(err, &apiErr) {
			s.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("request failed")
			apiErr = apiError(http.StatusInternalServerError, client.CodeInternal, "internal error; see the server log")
		}
		writeError(w, apiErr)
	})
}

// principal returns who the request's credential names: the operator's
// bearer token, a team token, or for the console's own calls a team
// session's subject. ok is false for none of them.
func (s *Server) principal(r *http.Request, inProcess bool) (principal, bool, error) {
	if subject := console.Subject(r.Context()); inProcess && subject != "" {
		return s.teamSubject(r.Context(), subject)
	}
	given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return principal{}, false, nil
	}
	sum := sha256.Sum256([]byte(given))
	if subtle.ConstantTimeCompare(sum[:], s.token[:]) == 1 {
		return principal{}, true, nil
	}
	return s.teamToken(r.Context(), given)
}

// rebuildingMessage answers a request the delivery index cannot serve
// while it is rebuilt from AUDIT, after its bbolt file was found damaged.
const rebuildingMessage = "the delivery index is being rebuilt from AUDIT after its bbolt file was found damaged; try again shortly"

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (write
// deadlines of the event streams).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// logged logs one line per request: method, path, status, duration. Never
// headers or bodies, which carry tokens and secrets.
func (s *Server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Int("status", rec.status).
			Dur("duration", s.now().Sub(start)).Msg("http request")
	})
}

// decode reads a JSON body into v, refusing unknown fields and trailing data.
func decode(r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apiError(http.StatusRequestEntityTooLarge, client.CodeTooLarge, "body larger than %d bytes", tooBig.Limit)
		}
		if errors.Is(err, io.EOF) {
			return invalid("empty body: want a JSON object")
		}
		return invalid("body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return invalid("body: trailing data after the JSON object")
	}
	return nil
}

// decodeOptional is decode for a body that may be left out: an empty body
// leaves v as it is.
func decodeOptional(r *http.Request, limit int64, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return apiError(http.StatusRequestEntityTooLarge, client.CodeTooLarge, "body larger than %d bytes", tooBig.Limit)
	}
	if err != nil {
		return invalid("body: %s", err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	return decode(r, limit, v)
}

func parseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, invalid("%s: %q is not an RFC 3339 time", field, v)
	}
	return t, nil
}

// invalidSubscription turns a subscriptions.ErrInvalid error into a 400.
func invalidSubscription(err error) error {
	return invalid("%s", strings.TrimPrefix(err.Error(), subscriptions.ErrInvalid.Error()+": "))
}
