package jetstream

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// InboxPrefix is the inbox prefix of webhookd's own connection (embedded or
// external). Robots may subscribe to _INBOX.> to receive their publish acks,
// so webhookd's replies (KV reads, pull-consumer deliveries) must not travel
// under that prefix. On an external server, webhookd's user needs subscribe
// rights on InboxPrefix + ".>".
const InboxPrefix = "_WEBHOOKD_INBOX"

// Accounts and users of the embedded server. webhookd and JetStream live in
// the global account ($G, where existing stores keep their streams). Each
// robot named in the users file has an account of its own (ROBOT_<user> or
// ROBOT_<nkey>), so no robot can receive another's publish acks; anonymous
// robots share the account ROBOTS, and so see each other's acks. Every
// robot account reaches events.> through a service import.
// The import is what makes a robot's reply subject harmless: JetStream
// answers a publish on a subject mapped back into the robots account, so a
// robot that sets its reply to deliveries.x or $KV.subscriptions.<id> cannot
// make JetStream write its ack into webhookd's streams, which a single
// account with publish permissions alone would allow (the server does not
// check reply subjects against publish permissions).
const (
	robotsAccount = "ROBOTS"
	// robotAccountPrefix begins the account of a named robot.
	robotAccountPrefix = "ROBOT_"
	internalUser       = "webhookd"
	// inProcess is jwt.ConnectionTypeInProcess: webhookd's user may only
	// connect in-process, never over TCP.
	inProcess = "IN_PROCESS"
)

// Subjects of the robot permissions.
const (
	// reservedEvents are webhookd's own operational events
	// (events.webhook.subscription_disabled, …): robots may not forge them.
	reservedEvents = EventsPrefix + "webhook.>"
	robotInboxes   = "_INBOX.>"
)

// robotPublishDeny is what a robot may not publish to. Robots are confined
// by their account: the only ways out of it are the events.> import and
// the server's own imports ($SYS requests, the $JS API), denied here with
// webhookd's reserved events and every robot's inboxes (no forged acks).
// The rest names webhookd's subjects, which a robot account never imports:
// a second line should one ever be added.
//
// There is no allow list on purpose. The server matches a subject with an
// empty token (events..task, events.task.) against no pattern at all, so an
// allow list refuses it as a permission violation, which the client library
// reports asynchronously while the publisher waits out its timeout. Without
// one, such a publish reaches no subscriber and the server answers at once
// with "no responders": a prompt refusal.
var robotPublishDeny = []string{
	reservedEvents, robotInboxes, "$SYS.>", "$JS.>", "$JSC.>", "$KV.>", "$O.>",
	DeliveriesPrefix + ">", AuditPrefix + ">", InboxPrefix + ".>", "webhookd.>", // listen, routed, history
}

// robotPermissions lets a robot publish events, except webhookd's own, and
// receive the acks JetStream sends to its inbox. Nothing else: no JetStream
// API, no KV, no other subjects (see robotPublishDeny).
func robotPermissions() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Deny: slices.Clone(robotPublishDeny)},
		Subscribe: &server.SubjectPermission{Allow: []string{robotInboxes}},
	}
}

// robotUser is one entry of the users file: a name and password (plaintext
// or a bcrypt hash, as nats-server takes them), or an NKey public key.
type robotUser struct {
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	NKey     string `yaml:"nkey"`
}

// usersFile is the layout of the --nats-users-file (YAML, or JSON, which the
// YAML decoder reads too).
type usersFile struct {
	Users []robotUser `yaml:"users"`
}

// loadUsers reads and validates a users file:
//
//	users:
//	  - user: robot-7
//	    password: $2a$11$…   # bcrypt ("nats server passwd"), or plaintext
//	  - nkey: UDXU4RCS…      # a user's public NKey; the robot holds the seed
//
// JSON with the same keys is accepted. Errors name the entry but never echo
// a password or a seed.
func loadUsers(path string) ([]robotUser, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jetstream: users file: %w", err)
	}
	users, err := parseUsers(raw)
	if err != nil {
		return nil, fmt.Errorf("jetstream: users file %s: %w", path, err)
	}
	return users, nil
}

func parseUsers(raw []byte) ([]robotUser, error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var f usersFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, errors.New(oneLine(err.Error()))
	}
	if len(f.Users) == 0 {
		return nil, errors.New(`no users: want a "users" list of {user, password} or {nkey} entries`)
	}
	names, keys := map[string]bool{}, map[string]bool{}
	for i, u := range f.Users {
		if err := checkUser(u); err != nil {
			return nil, fmt.Errorf("users[%d]: %w", i, err)
		}
		if u.NKey != "" {
			if keys[u.NKey] {
				return nil, fmt.Errorf("users[%d]: nkey %s is listed twice", i, u.NKey)
			}
			keys[u.NKey] = true
			continue
		}
		if names[u.User] {
			return nil, fmt.Errorf("users[%d]: user %q is listed twice", i, u.User)
		}
		names[u.User] = true
	}
	return f.Users, nil
}

func checkUser(u robotUser) error {
	if u.NKey != "" {
		if u.User != "" || u.Password != "" {
			return errors.New("give either nkey or user and password, not both")
		}
		if strings.HasPrefix(u.NKey, "S") {
			return errors.New("nkey is a private seed: give its public key (U…), keep the seed with the robot")
		}
		if !nkeys.IsValidPublicUserKey(u.NKey) {
			return errors.New("nkey is not a user public key (56 characters starting with U)")
		}
		return nil
	}
	switch {
	case u.User == "" && u.Password == "":
		return errors.New("empty entry: want user and password, or nkey")
	case u.User == "":
		return errors.New("password without user")
	case u.Password == "":
		return fmt.Errorf("user %q has no password", u.User)
	case u.User == internalUser:
		return fmt.Errorf("user name %q is reserved", u.User)
	case strings.ContainsFunc(u.User, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Errorf("user %q: name contains spaces or control characters", u.User)
	case strings.HasPrefix(u.Password, "$2"):
		if _, err := bcrypt.Cost([]byte(u.Password)); err != nil {
			return fmt.Errorf("user %q: password looks like a bcrypt hash but is not one: %w", u.User, err)
		}
	}
	return nil
}

// oneLine folds a multi-line parser message into one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// auth is the embedded server's accounts and users, plus the password of
// webhookd's own in-process connection.
type auth struct {
	accounts   []*server.Account
	users      []*server.User
	nkeys      []*server.NkeyUser
	noAuthUser string
	named      int // robots from the users file
	password   string
}

// newAuth builds the accounts and users for o. Anonymous robots are accepted
// on a loopback listener without a users file, or wherever o.AllowAnonymous
// says so; a non-loopback listener needs a users file or AllowAnonymous.
func newAuth(o Options) (*auth, error) {
	anonymous := o.AllowAnonymous || (o.UsersFile == "" && isLoopback(o.Listen))
	if o.UsersFile == "" && !anonymous {
		return nil, fmt.Errorf("jetstream: embedded server on non-loopback %s would let anyone publish events: "+
			"give --nats-users-file, or --nats-allow-anonymous to accept robots without credentials there", o.Listen)
	}
	var robots []robotUser
	if o.UsersFile != "" {
		var err error
		if robots, err = loadUsers(o.UsersFile); err != nil {
			return nil, err
		}
	}

	global := server.NewAccount(server.DEFAULT_GLOBAL_ACCOUNT)
	// Exported to every account: only webhookd creates accounts here.
	if err := global.AddServiceExport(EventsPrefix+">", nil); err != nil {
		return nil, fmt.Errorf("jetstream: export events: %w", err)
	}
	accounts := []*server.Account{global}
	taken := map[string]bool{}
	robotAccount := func(name string) (*server.Account, error) {
		if taken[name] { // a user named like another robot's NKey
			return nil, fmt.Errorf("jetstream: users file: two robots would share the account %s: rename the user", name)
		}
		taken[name] = true
		acc, err := limitedAccount(name, o.MaxRobotConnections, o.MaxRobotSubscriptions)
		if err != nil {
			return nil, err
		}
		if err := acc.AddServiceImport(global, EventsPrefix+">", EventsPrefix+">"); err != nil {
			return nil, fmt.Errorf("jetstream: import events into %s: %w", name, err)
		}
		accounts = append(accounts, acc)
		return acc, nil
	}

	password, err := randomSecret()
	if err != nil {
		return nil, err
	}
	// Only the hash sits in the server's options; a random 256-bit secret
	// needs no slow hash, so the minimum cost keeps start-up fast.
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("jetstream: hash internal password: %w", err)
	}
	a := &auth{
		users: []*server.User{{
			Username: internalUser, Password: string(hash), Account: global,
			AllowedConnectionTypes: map[string]struct{}{inProcess: {}},
		}},
		named:    len(robots),
		password: password,
	}
	if anonymous {
		// Clients without credentials become this NKey user. An NKey and not
		// a password user: the server would compare a stored bcrypt hash
		// against itself, and a plaintext one makes it warn at every start.
		// No one holds the seed; presenting the key unsigned gives nothing
		// beyond what anonymous robots have.
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("jetstream: anonymous identity: %w", err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("jetstream: anonymous identity: %w", err)
		}
		acc, err := robotAccount(robotsAccount)
		if err != nil {
			return nil, err
		}
		a.nkeys = append(a.nkeys, &server.NkeyUser{Nkey: pub, Permissions: robotPermissions(), Account: acc})
		a.noAuthUser = pub
	}
	for _, r := range robots {
		if r.NKey != "" {
			acc, err := robotAccount(robotAccountPrefix + r.NKey)
			if err != nil {
				return nil, err
			}
			a.nkeys = append(a.nkeys, &server.NkeyUser{Nkey: r.NKey, Permissions: robotPermissions(), Account: acc})
			continue
		}
		acc, err := robotAccount(robotAccountPrefix + r.User)
		if err != nil {
			return nil, err
		}
		a.users = append(a.users, &server.User{
			Username: r.User, Password: r.Password, Permissions: robotPermissions(), Account: acc,
		})
	}
	a.accounts = accounts
	return a, nil
}

// authenticator returns the server's authenticator for these users, slowing
// an address down by delay after each failure (0: no delay).
func (a *auth) authenticator(delay time.Duration, log zerolog.Logger) *authenticator {
	au := &authenticator{
		users: map[string]*server.User{}, nkeys: map[string]*server.NkeyUser{},
		penalties: newPenalties(delay), log: log.With().Str("component", "nats-auth").Logger(),
	}
	for _, u := range a.users {
		au.users[u.Username] = u
	}
	for _, n := range a.nkeys {
		au.nkeys[n.Nkey] = n
		if n.Nkey == a.noAuthUser {
			au.anonymous = n
		}
	}
	return au
}

// limitedAccount returns a new account that caps its connections and the
// subscriptions of each of them (0: no cap). nats-server sets these limits
// only from its configuration file or an account JWT, so the account comes
// from parsing a configuration, under a placeholder name then replaced
// (names are not part of the parsed text, so none can break it).
func limitedAccount(name string, conns, subs int) (*server.Account, error) {
	if conns == 0 && subs == 0 {
		return server.NewAccount(name), nil
	}
	limit := func(n int) int {
		if n == 0 {
			return -1 // no limit
		}
		return n
	}
	const placeholder = "A"
	var opts server.Options
	if err := opts.ProcessConfigString(fmt.Sprintf("accounts: { %s: { limits: { max_connections: %d, max_subscriptions: %d } } }",
		placeholder, limit(conns), limit(subs))); err != nil {
		return nil, fmt.Errorf("jetstream: account limits: %w", err)
	}
	for _, acc := range opts.Accounts {
		if acc.Name == placeholder {
			acc.Name = name
			return acc, nil
		}
	}
	return nil, errors.New("jetstream: account limits: no account parsed")
}

func randomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("jetstream: random secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// isLoopback reports whether a listen address binds loopback only. An empty
// host (all interfaces) or any name but localhost is not loopback.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
