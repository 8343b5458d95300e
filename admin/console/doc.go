// Package console is webhookd's web console, served under /ui/ by the admin
// server behind the same admin token.
//
// An operator logs in by pasting the admin token; the console then keeps an
// HMAC-signed session cookie (HttpOnly, SameSite=Strict, Secure over TLS)
// that never holds the token, and every form carries a CSRF token bound to
// that session. Pages are rendered on the server with html/template from the
// admin API's own answers: the console calls the API's handler in process,
// as the operator, so it shares the API's validation and business rules and
// shows fields it does not know yet. It has no JavaScript; its one
// stylesheet is embedded, nothing is fetched from elsewhere, and a strict
// Content-Security-Policy is set on every answer.
package console
