package jetstream

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"
)

// authenticator checks the credentials of every client of the embedded
// server (server.Options.CustomClientAuthentication) in place of the
// server's own user lists, which answer a wrong password at once and log it
// without a way to slow the next guess down. It knows the same users: names
// with a plaintext or bcrypt password, NKeys (a signature of the server's
// nonce), anonymous robots (no credentials), and webhookd's own user, which
// only an in-process connection may use.
//
// A failed authentication over the network is logged at warn with the
// remote address and the user name (never the password), and slows the
// address down: its next attempts are checked at most once per delay, each
// held back until its turn, and refused unchecked when their turn is more
// than a few delays away. A guesser gets one try per delay and address,
// however many connections it opens.
type authenticator struct {
	users     map[string]*server.User
	nkeys     map[string]*server.NkeyUser
	anonymous *server.NkeyUser // nil: no anonymous robots
	penalties *penalties
	log       zerolog.Logger
}

var _ server.Authentication = (*authenticator)(nil)

// bind points every user at the server's own copy of its account: the
// server registers copies of the accounts in its options, and a client must
// join a registered one. Call it after server.NewServer, before Start.
func (a *authenticator) bind(ns *server.Server) error {
	lookup := func(acc *server.Account) (*server.Account, error) {
		if acc == nil {
			return nil, nil
		}
		reg, err := ns.LookupAccount(acc.Name)
		if err != nil {
			return nil, fmt.Errorf("jetstream: account %s: %w", acc.Name, err)
		}
		return reg, nil
	}
	for name, u := range a.users {
		acc, err := lookup(u.Account)
		if err != nil {
			return err
		}
		bound := *u
		bound.Account = acc
		a.users[name] = &bound
	}
	for key, u := range a.nkeys {
		acc, err := lookup(u.Account)
		if err != nil {
			return err
		}
		bound := *u
		bound.Account = acc
		a.nkeys[key] = &bound
		if a.anonymous == u {
			a.anonymous = &bound
		}
	}
	return nil
}

// nkeyRegistrar is the part of the server's client that takes an NKey user;
// server.ClientAuthentication only declares RegisterUser.
type nkeyRegistrar interface {
	RegisterNkeyUser(*server.NkeyUser) error
}

// Check implements server.Authentication. It runs in the client's read
// loop, so holding an attempt back delays that connection only.
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	addr := c.RemoteAddress()
	if addr == nil {
		return false
	}
	local := addr.Network() == "pipe" // net.Pipe: server.InProcessConn
	host := addr.String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !local && !a.penalties.wait(host) {
		return false // too many attempts from this address queued already
	}
	o := c.GetOpts()
	switch a.check(c, o, local) {
	case accepted:
		return true
	case overLimit: // good credentials; the server has said why it refused
		return false
	}
	if local {
		return false
	}
	a.penalties.fail(host)
	who := o.Username
	if o.Nkey != "" {
		who = o.Nkey
	}
	a.log.Warn().Str("remote", addr.String()).Str("user", who).Msg("nats authentication failed")
	return false
}

// verdict is what check made of a client.
type verdict int

const (
	rejected  verdict = iota // wrong or missing credentials
	accepted                 // registered with its user's account
	overLimit                // good credentials, but the account is full
)

// check verifies the credentials and registers the client's user; local
// says the client connected in-process.
func (a *authenticator) check(c server.ClientAuthentication, o *server.ClientOpts, local bool) verdict {
	switch {
	case o.Nkey != "":
		u := a.nkeys[o.Nkey]
		if u == nil || u == a.anonymous || !validSignature(o.Nkey, o.Sig, c.GetNonce()) {
			return rejected
		}
		return register(c, u)
	case o.Username != "":
		u := a.users[o.Username]
		if u == nil || !passwordMatches(u.Password, o.Password) {
			return rejected
		}
		if len(u.AllowedConnectionTypes) > 0 {
			if _, ok := u.AllowedConnectionTypes[inProcess]; !ok || !local {
				return rejected // webhookd's own user, over the network
			}
		}
		// Over its account's limit the server closes the client here, and
		// says why.
		c.RegisterUser(u)
		return accepted
	case o.Password == "" && o.Token == "" && o.JWT == "" && a.anonymous != nil:
		return register(c, a.anonymous)
	default:
		return rejected
	}
}

// register gives the client its NKey user. Over its account's connection
// limit the server refuses the client here, and tells it so.
func register(c server.ClientAuthentication, u *server.NkeyUser) verdict {
	r, ok := c.(nkeyRegistrar)
	if !ok {
		return rejected
	}
	if r.RegisterNkeyUser(u) != nil {
		return overLimit
	}
	return accepted
}

// validSignature reports whether sig (base64) is pub's signature of nonce.
func validSignature(pub, sig string, nonce []byte) bool {
	if sig == "" || len(nonce) == 0 {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		if raw, err = base64.StdEncoding.DecodeString(sig); err != nil {
			return false
		}
	}
	kp, err := nkeys.FromPublicKey(pub)
	return err == nil && kp.Verify(nonce, raw) == nil
}

// passwordMatches compares a stored password, plaintext or bcrypt hash, with
// the one a client gave, in constant time for plaintext.
func passwordMatches(stored, given string) bool {
	if strings.HasPrefix(stored, "$2") {
		return bcrypt.CompareHashAndPassword([]byte(stored), []byte(given)) == nil
	}
	return subtle.ConstantTimeCompare([]byte(stored), []byte(given)) == 1
}

// Bounds of the penalty table.
const (
	// maxQueuedDelays is how many delays ahead an attempt may be queued
	// before it is refused unchecked.
	maxQueuedDelays = 3
	// maxPenalized is how many addresses are tracked one by one; beyond it
	// new addresses share one entry (they slow each other down).
	maxPenalized = 10_000
	// sharedPenalty is the key of that shared entry.
	sharedPenalty = "*"
)

// penalties spaces the authentication attempts of addresses that failed
// one: each such attempt takes the next free slot, delay after the last.
type penalties struct {
	delay time.Duration
	now   func() time.Time
	sleep func(time.Duration)

	mu    sync.Mutex
	next  map[string]time.Time // address → its next free slot
	swept time.Time            // when quiet addresses were last forgotten
}

func newPenalties(delay time.Duration) *penalties {
	return &penalties{delay: delay, now: time.Now, sleep: time.Sleep, next: map[string]time.Time{}}
}

// wait holds an attempt from host back until its slot, and reports whether
// it may be checked; false when the slot is too far ahead.
func (p *penalties) wait(host string) bool {
	if p.delay <= 0 {
		return true
	}
	p.mu.Lock()
	key := p.key(host)
	next, ok := p.next[key]
	if !ok {
		p.mu.Unlock()
		return true
	}
	now := p.now()
	slot := next
	if slot.Before(now) {
		slot = now
	}
	if slot.Sub(now) > maxQueuedDelays*p.delay {
		p.mu.Unlock()
		return false
	}
	p.next[key] = slot.Add(p.delay)
	p.mu.Unlock()
	p.sleep(slot.Sub(now))
	return true
}

// fail marks host as having failed: its next attempt waits a delay.
func (p *penalties) fail(host string) {
	if p.delay <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if len(p.next) >= maxPenalized && now.Sub(p.swept) >= p.delay {
		p.swept = now
		for h, next := range p.next { // forget addresses quiet for a minute
			if now.Sub(next) > time.Minute {
				delete(p.next, h)
			}
		}
	}
	key := p.key(host)
	if next, ok := p.next[key]; !ok || next.Before(now.Add(p.delay)) {
		p.next[key] = now.Add(p.delay)
	}
}

// key is host, or the shared entry when the table is full. Lock held.
func (p *penalties) key(host string) string {
	if _, ok := p.next[host]; ok || len(p.next) < maxPenalized {
		return host
	}
	return sharedPenalty
}
