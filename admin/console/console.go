package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/internal/throttle"
)

//go:embed templates/*.html static/*
var assets embed.FS

// maxForm caps a posted form: a subscription's fields, headers included,
// fit well within it.
const maxForm = 64 << 10

// cookieName names the session cookie; its path is /ui.
const cookieName = "webhookd_console"

// csp allows nothing but this origin's stylesheet, forms posting to this
// origin and images (none) from it: no script at all, no inline style, no
// framing.
const csp = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

// Config configures the console.
type Config struct {
	// Token is the admin token: operators paste it to log in, and the
	// console presents it to the admin API on their behalf.
	Token string
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Revocations records the sessions ended by logout, so that every
	// replica refuses them (default: this console's memory only, which
	// holds on this replica alone).
	Revocations Revocations
	// Failures throttles wrong tokens at login, per client address and
	// over all; share it with the admin API's bearer check (default: a
	// throttle of the console's own with the default budgets).
	Failures *throttle.Failures
	// TeamLogin checks a pasted token that is not the admin token: for a
	// team token it returns a subject naming it (at most 128 bytes), kept
	// in the session and handed to the admin API with each of its calls
	// (Subject), which shows the team its own subscriptions only. Nil:
	// only the admin token logs in.
	TeamLogin func(ctx context.Context, token string) (subject string, ok bool, err error)
}

// Revocations records the sessions ended by logout. Implementations must
// be safe for concurrent use and remember a revoked id for at least a
// session's lifetime.
type Revocations interface {
	// Revoke records the session id as ended.
	Revoke(ctx context.Context, id string) error
	// Revoked reports whether the session id was ended.
	Revoked(ctx context.Context, id string) (bool, error)
}

// memoryRevocations is the default Revocations: this process only.
type memoryRevocations struct {
	mu  sync.Mutex
	ids map[string]time.Time // id → when it may be forgotten
	ttl time.Duration
	now func() time.Time
}

func (m *memoryRevocations) Revoke(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for k, until := range m.ids {
		if now.After(until) {
			delete(m.ids, k)
		}
	}
	m.ids[id] = now.Add(m.ttl)
	return nil
}

func (m *memoryRevocations) Revoked(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.ids[id]
	return ok, nil
}

// Console is the web console. It holds no state of its own but the
// default, in-memory revocations (Config.Revocations): every page is
// built from admin API answers.
type Console struct {
	sess  sessions
	auth  string
	now   func() time.Time
	pages map[string]*template.Template
	log   zerolog.Logger
	fails *throttle.Failures
	revs  Revocations
	team  func(ctx context.Context, token string) (string, bool, error)
}

// New parses the embedded templates and returns the console.
func New(cfg Config, log zerolog.Logger) (*Console, error) {
	if cfg.Token == "" {
		return nil, errors.New("console: a token is required")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Failures == nil {
		cfg.Failures = throttle.New(throttle.Config{})
	}
	if cfg.Revocations == nil {
		cfg.Revocations = &memoryRevocations{ids: map[string]time.Time{}, ttl: cfg.SessionTTL, now: cfg.Now}
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "subscriptions", "subscription", "new", "secret", "ping", "delete",
		"deliveries", "delivery", "eventtypes", "events", "event", "try", "error"} {
		t, err := template.New("layout.html").Funcs(funcs(cfg.Now)).ParseFS(assets, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return &Console{
		sess: newSessions(cfg.Token, cfg.SessionTTL, cfg.Now), auth: "Bearer " + cfg.Token, now: cfg.Now,
		pages: pages, log: log.With().Str("component", "console").Logger(), fails: cfg.Failures,
		revs: cfg.Revocations, team: cfg.TeamLogin,
	}, nil
}

// Handler serves the console under /ui/. api is the admin API's handler:
// every page reads, and every button acts, through it, so the console
// shares the API's validation and business rules.
func (c *Console) Handler(api http.Handler) http.Handler {
	static, _ := fs.Sub(assets, "static") // the directory is embedded: cannot fail
	mux := http.NewServeMux()
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /ui/login", c.loginPage)
	mux.HandleFunc("POST /ui/login", c.login)
	mux.HandleFunc("POST /ui/logout", c.loggedIn(c.logout))
	mux.HandleFunc("GET /ui/{$}", c.loggedIn(func(w http.ResponseWriter, r *http.Request, _ *page) {
		http.Redirect(w, r, "/ui/subscriptions", http.StatusSeeOther)
	}))
	h := handlers{c: c, api: api}
	mux.HandleFunc("GET /ui/subscriptions", c.loggedIn(h.subscriptions))
	mux.HandleFunc("POST /ui/subscriptions", c.loggedIn(h.create))
	mux.HandleFunc("GET /ui/subscriptions/new", c.loggedIn(h.newForm))
	mux.HandleFunc("GET /ui/subscriptions/try", c.loggedIn(h.tryPage))
	mux.HandleFunc("POST /ui/subscriptions/try", c.loggedIn(h.try))
	mux.HandleFunc("GET /ui/subscriptions/{id}", c.loggedIn(h.subscription))
	mux.HandleFunc("GET /ui/subscriptions/{id}/delete", c.loggedIn(h.confirmDelete))
	mux.HandleFunc("POST /ui/subscriptions/{id}/{action}", c.loggedIn(h.subscriptionAction))
	mux.HandleFunc("GET /ui/event-types", c.loggedIn(h.eventTypes))
	mux.HandleFunc("GET /ui/events", c.loggedIn(h.events))
	mux.HandleFunc("GET /ui/events/{id}", c.loggedIn(h.event))
	mux.HandleFunc("GET /ui/deliveries", c.loggedIn(h.deliveries))
	mux.HandleFunc("GET /ui/deliveries/{id}", c.loggedIn(h.delivery))
	mux.HandleFunc("POST /ui/deliveries/{id}/redeliver", c.loggedIn(h.redeliver))
	mux.HandleFunc("/ui/", c.loggedIn(func(w http.ResponseWriter, _ *http.Request, p *page) {
		c.fail(w, p, http.StatusNotFound, "No such page.")
	}))
	return headers(mux)
}

// headers sets the security headers on every console answer.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// same-origin, not no-referrer: with no-referrer a browser sends
		// "Origin: null" on form posts, which sameOrigin refuses.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// page is what every template gets.
type page struct {
	Title string
	Nav   string
	CSRF  string
	// Team is set for a team's session: the operator's pages (the
	// message log) are not offered.
	Team bool
	// Flash is a fixed message after an action; Error a one-line error.
	Flash, Error string
	Data         any
}

// render writes a page; a template failure is logged and answers 500.
func (c *Console) render(w http.ResponseWriter, status int, name string, p *page) {
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, p); err != nil {
		c.log.Error().Err(err).Str("page", name).Msg("render console page")
		http.Error(w, "internal error; see the server log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// fail renders the error page.
func (c *Console) fail(w http.ResponseWriter, p *page, status int, msg string) {
	p.Title, p.Error = http.StatusText(status), msg
	c.render(w, status, "error", p)
}

// failAPI renders an error answered by the API (its message, one line) or
// any other error (logged, not shown).
func (c *Console) failAPI(w http.ResponseWriter, p *page, err error) {
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		c.fail(w, p, apiErr.Status, apiErr.Message)
		return
	}
	c.log.Error().Err(err).Msg("console request failed")
	c.fail(w, p, http.StatusInternalServerError, "Internal error; see the server log.")
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok, err := c.session(r); ok && err == nil {
		http.Redirect(w, r, "/ui/subscriptions", http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "login", &page{Title: "Log in"})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		c.fail(w, &page{}, http.StatusForbidden, "Cross-origin request refused.")
		return
	}
	addr := throttle.Client(r.RemoteAddr)
	if wait := c.fails.Wait(addr); wait > 0 {
		// Refused unchecked: a throttled guesser learns nothing.
		secs := throttle.RetryAfter(wait)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		c.render(w, http.StatusTooManyRequests, "login", &page{Title: "Log in",
			Error: fmt.Sprintf("Too many wrong tokens from your address: wait %d s and try again.", secs)})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, os.ErrDeadlineExceeded) { // the body did not arrive in time
			status = http.StatusRequestTimeout
		}
		c.fail(w, &page{}, status, "Could not read the login form.")
		return
	}
	given := strings.TrimSpace(r.PostFormValue("token"))
	ok, subject, err := c.sess.tokenOK(given), "", error(nil)
	if !ok && given != "" && c.team != nil {
		subject, ok, err = c.team(r.Context(), given)
		if err == nil && ok && (subject == "" || len(subject) > maxSubject) {
			err = fmt.Errorf("console: team login: a subject of %d bytes", len(subject))
		}
	}
	if err != nil {
		c.log.Error().Err(err).Msg("console login: check a team token")
		c.fail(w, &page{}, http.StatusServiceUnavailable, "Cannot check the token now: try again.")
		return
	}
	if !ok {
		if given != "" { // an empty form is no guess
			exhausted := c.fails.Fail(addr)
			c.log.Warn().Str("remote_addr", r.RemoteAddr).Bool("throttled", exhausted).Msg("console login with a wrong token")
		}
		c.render(w, http.StatusUnauthorized, "login", &page{Title: "Log in", Error: "Wrong token."})
		return
	}
	value, err := c.sess.issue(subject)
	if err != nil {
		c.failAPI(w, &page{}, err)
		return
	}
	c.setCookie(w, r, value, int(c.sess.ttl/time.Second))
	http.Redirect(w, r, "/ui/subscriptions", http.StatusSeeOther)
}

// logout ends the session on every replica (its id is recorded as
// revoked), then clears the cookie. When the revocation cannot be
// recorded, the cookie is kept and the operator told to try again: a copy
// of it would otherwise still work.
func (c *Console) logout(w http.ResponseWriter, r *http.Request, p *page) {
	payload, _, _ := c.session(r) // loggedIn checked it
	if err := c.revs.Revoke(r.Context(), sessionID(payload)); err != nil {
		c.log.Error().Err(err).Msg("console logout: record the revoked session")
		c.fail(w, p, http.StatusServiceUnavailable, "Could not end the session on every replica: try again.")
		return
	}
	c.log.Info().Str("remote_addr", r.RemoteAddr).Msg("console session ended by logout")
	c.setCookie(w, r, "", -1)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// setCookie sets the session cookie: Secure when the browser reached us over
// TLS, directly or through a proxy that says so with X-Forwarded-Proto (a
// forged header can only make the sender's own cookie stricter).
func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: value, Path: "/ui", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
	})
}

// session returns the payload of the request's valid session, if any: signed
// by this token, not expired, and not revoked by a logout on any replica. An
// error means the revocations could not be read.
func (c *Console) session(r *http.Request) ([]byte, bool, error) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil, false, nil
	}
	payload, ok := c.sess.verify(ck.Value)
	if !ok {
		return nil, false, nil
	}
	revoked, err := c.revs.Revoked(r.Context(), sessionID(payload))
	if err != nil {
		return nil, false, fmt.Errorf("console: check session: %w", err)
	}
	return payload, !revoked, nil
}

// sameOrigin refuses a request whose Origin header (browsers send it on
// every POST) names another origin than the one it was sent to.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// loggedIn runs h for a request with a valid session: a GET without one is
// sent to the login page; a POST also needs the session's CSRF token in its
// form and must not come from another origin.
func (c *Console) loggedIn(h func(http.ResponseWriter, *http.Request, *page)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		payload, ok, err := c.session(r)
		if err != nil {
			c.log.Error().Err(err).Msg("console session check failed")
			c.fail(w, &page{}, http.StatusServiceUnavailable, "Cannot check the session now: try again.")
			return
		}
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
				return
			}
			c.fail(w, &page{}, http.StatusForbidden, "Not logged in, or the session has expired: log in again.")
			return
		}
		p := &page{CSRF: c.sess.csrf(payload)}
		if subject := payloadSubject(payload); subject != "" {
			r = r.WithContext(context.WithValue(r.Context(), sessionSubjectKey{}, subject))
			p.Team = true
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if !sameOrigin(r) || !c.sess.csrfOK(payload, r.PostFormValue("csrf")) {
				c.fail(w, p, http.StatusForbidden, "Missing or wrong form token: reload the page and try again.")
				return
			}
		}
		h(w, r, p)
	}
}

// handlers are the pages that read or act through the admin API.
type handlers struct {
	c   *Console
	api http.Handler
}

// inProcessKey marks the context of the console's own API calls.
type inProcessKey struct{}

// InProcess reports whether a request is one of the console's own calls to
// the admin API, made for a logged-in operator: the API does not throttle
// those by client address (the session was checked already).
func InProcess(ctx context.Context) bool {
	v, _ := ctx.Value(inProcessKey{}).(bool)
	return v
}

// subjectKey marks the context of the console's calls for a team session:
// its subject (Config.TeamLogin).
type subjectKey struct{}

// Subject returns the team session's subject of one of the console's own
// calls to the admin API (see InProcess), or "" for an operator's session.
func Subject(ctx context.Context) string {
	v, _ := ctx.Value(subjectKey{}).(string)
	return v
}

// sessionSubject returns the subject loggedIn found in the request's
// session, "" for the operator.
func sessionSubject(ctx context.Context) string {
	v, _ := ctx.Value(sessionSubjectKey{}).(string)
	return v
}

type sessionSubjectKey struct{}

// call runs one admin API request in process, as the session's principal
// (the console's token for the operator, the subject for a team), and
// decodes its JSON answer into out. An error answer
// comes back as a *client.Error.
func (h handlers) call(ctx context.Context, from *http.Request, method, path string, out any) error {
	return h.send(ctx, from, method, path, nil, out)
}

// send is call with a request body: in, encoded as JSON (none when nil).
func (h handlers) send(ctx context.Context, from *http.Request, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("console: encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, inProcessKey{}, true), method, path, body)
	if err != nil {
		return fmt.Errorf("console: %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if subject := sessionSubject(from.Context()); subject != "" {
		req = req.WithContext(context.WithValue(req.Context(), subjectKey{}, subject))
	} else {
		req.Header.Set("Authorization", h.c.auth)
	}
	req.RemoteAddr, req.Host = from.RemoteAddr, from.Host
	rec := &recorder{header: http.Header{}}
	h.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		var e struct {
			Error *client.Error `json:"error"`
		}
		if json.Unmarshal(rec.body.Bytes(), &e) == nil && e.Error != nil {
			e.Error.Status = rec.status
			return e.Error
		}
		return fmt.Errorf("console: %s %s: HTTP %d", method, path, rec.status)
	}
	if out == nil || rec.status == http.StatusNoContent {
		return nil
	}
	dec := json.NewDecoder(&rec.body)
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("console: decode %s %s: %w", method, path, err)
	}
	return nil
}

// recorder is the http.ResponseWriter of an in-process API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
