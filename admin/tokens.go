package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/subscriptions"
)

// teamTokenPrefix starts every team token: "wht." + name + "." + 43
// characters of base64url (32 random bytes). The name in it tells which
// record to compare with; the random part is what authenticates.
const teamTokenPrefix = "wht."

// maxTokenName bounds a team token's name.
const maxTokenName = 63

// tokenRecord is a team token as the bucket (jetstream.BucketTeamTokens)
// keeps it, under its name: never the token, only its SHA-256.
type tokenRecord struct {
	Name      string    `json:"name"`
	Owner     string    `json:"owner"`
	CreatedAt time.Time `json:"created_at"`
	SHA256    string    `json:"sha256"` // hex
}

// validTokenName reports whether name is 1 to maxTokenName lower-case
// letters, digits, '-' and '_', starting with a letter or digit: a KV key
// and a token part (no '.').
func validTokenName(name string) bool {
	if name == "" || len(name) > maxTokenName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '-' || c == '_')) {
			return false
		}
	}
	return true
}

// teamToken checks a bearer value that is not the operator's token: it is
// a team token when its name has a record whose hash it matches (compared
// in constant time). The record is read from the bucket at every request,
// so a deleted token is refused at once on every replica. An error means
// the bucket could not be read.
func (s *Server) teamToken(ctx context.Context, given string) (principal, bool, error) {
	rest, ok := strings.CutPrefix(given, teamTokenPrefix)
	name, _, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || !validTokenName(name) || s.deps.Tokens == nil {
		return principal{}, false, nil
	}
	rec, err := s.tokenRecord(ctx, name)
	if errors.Is(err, natsjs.ErrKeyNotFound) {
		return principal{}, false, nil
	}
	if err != nil {
		return principal{}, false, err
	}
	want, err := hex.DecodeString(rec.SHA256)
	if err != nil {
		return principal{}, false, fmt.Errorf("team token %s: bad stored hash: %w", name, err)
	}
	sum := sha256.Sum256([]byte(given))
	if subtle.ConstantTimeCompare(sum[:], want) != 1 || rec.Owner == "" {
		return principal{}, false, nil
	}
	return principal{team: rec.Owner, token: name}, true, nil
}

// tokenRecord reads a team token's record; natsjs.ErrKeyNotFound when
// there is none.
func (s *Server) tokenRecord(ctx context.Context, name string) (tokenRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	e, err := s.deps.Tokens.Get(ctx, name)
	if errors.Is(err, natsjs.ErrKeyNotFound) {
		return tokenRecord{}, err
	}
	if err != nil {
		return tokenRecord{}, fmt.Errorf("read team token %s: %w", name, err)
	}
	var rec tokenRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return tokenRecord{}, fmt.Errorf("decode team token %s: %w", name, err)
	}
	return rec, nil
}

// tokens returns the team tokens' bucket, or a 503 when this server has none.
func (s *Server) tokens() (natsjs.KeyValue, error) {
	if s.deps.Tokens == nil {
		return nil, apiError(http.StatusServiceUnavailable, client.CodeUnavailable, "team tokens are not available on this replica")
	}
	return s.deps.Tokens, nil
}

func tokenView(rec tokenRecord) client.Token {
	return client.Token{Name: rec.Name, Owner: rec.Owner, CreatedAt: rec.CreatedAt}
}

// createToken issues a team token. The answer is the only one that
// carries it: the bucket keeps its SHA-256.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	kv, err := s.tokens()
	if err != nil {
		return err
	}
	var in client.TokenInput
	if err := decode(r, 4<<10, &in); err != nil {
		return err
	}
	if !validTokenName(in.Name) {
		return invalid("name: %q: want 1 to %d lower-case letters, digits, '-' or '_', starting with a letter or digit", truncate(in.Name), maxTokenName)
	}
	if in.Owner == "" {
		return invalid("owner: required: the team whose subscriptions (label owner=TEAM) the token may manage")
	}
	if err := subscriptions.ValidateLabel(subscriptions.OwnerLabel, in.Owner); err != nil {
		return invalid("owner: %s", strings.TrimPrefix(err.Error(), subscriptions.ErrInvalid.Error()+": labels: "))
	}
	random := make([]byte, 32)
	if _, err := rand.Read(random); err != nil {
		return fmt.Errorf("team token: %w", err)
	}
	token := teamTokenPrefix + in.Name + "." + base64.RawURLEncoding.EncodeToString(random)
	sum := sha256.Sum256([]byte(token))
	rec := tokenRecord{Name: in.Name, Owner: in.Owner, CreatedAt: s.now().UTC().Truncate(time.Second), SHA256: hex.EncodeToString(sum[:])}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode team token: %w", err)
	}
	if _, err := kv.Create(r.Context(), in.Name, b); errors.Is(err, natsjs.ErrKeyExists) {
		return apiError(http.StatusConflict, client.CodeConflict, "token %q exists: delete it first, or choose another name", in.Name)
	} else if err != nil {
		return fmt.Errorf("store team token %s: %w", in.Name, err)
	}
	s.log.Info().Str("token", in.Name).Str("owner", in.Owner).Msg("team token created")
	v := tokenView(rec)
	v.Token = token
	writeJSON(w, http.StatusCreated, v)
	return nil
}

// listTokens lists the team tokens by name, without their values.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	kv, err := s.tokens()
	if err != nil {
		return err
	}
	lister, err := kv.ListKeys(r.Context())
	if err != nil {
		return fmt.Errorf("list team tokens: %w", err)
	}
	var names []string
	for name := range lister.Keys() {
		names = append(names, name)
	}
	slices.Sort(names)
	items := []client.Token{}
	for _, name := range names {
		rec, err := s.tokenRecord(r.Context(), name)
		if errors.Is(err, natsjs.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		items = append(items, tokenView(rec))
	}
	writeJSON(w, http.StatusOK, client.List[client.Token]{Items: items})
	return nil
}

// deleteToken deletes a team token: the next request with it, on any
// replica, is refused (each reads the bucket), and so is a console
// session opened with it.
func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) error {
	kv, err := s.tokens()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if !validTokenName(name) {
		return notFound("token", truncate(name))
	}
	e, err := kv.Get(r.Context(), name)
	if errors.Is(err, natsjs.ErrKeyNotFound) {
		return notFound("token", name)
	}
	if err != nil {
		return fmt.Errorf("read team token %s: %w", name, err)
	}
	if err := kv.Delete(r.Context(), name, natsjs.LastRevision(e.Revision())); err != nil {
		return fmt.Errorf("delete team token %s: %w", name, err)
	}
	s.log.Info().Str("token", name).Msg("team token deleted")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// consoleLogin checks a token pasted in the console's login form that is
// not the operator's: for a team token it returns the session's subject,
// "name/tag" (sessionTag), which the console hands back with each of its calls
// (teamSubject), so the session ends with its token.
func (s *Server) consoleLogin(ctx context.Context, token string) (string, bool, error) {
	p, ok, err := s.teamToken(ctx, token)
	if err != nil || !ok {
		return "", false, err
	}
	rec, err := s.tokenRecord(ctx, p.token)
	if err != nil {
		return "", false, err
	}
	return rec.Name + "/" + sessionTag(rec), true, nil
}

// sessionTag ties a console session to one token record: derived from the
// token's hash, so the cookie, signed but not encrypted, does not carry
// the hash itself.
func sessionTag(rec tokenRecord) string {
	sum := sha256.Sum256([]byte("webhookd team console session\x00" + rec.SHA256))
	return hex.EncodeToString(sum[:16])
}

// teamSubject resolves a console session's subject: the token it was
// opened with must still exist, unchanged (a token deleted and created
// again under its name has another hash).
func (s *Server) teamSubject(ctx context.Context, subject string) (principal, bool, error) {
	name, tag, ok := strings.Cut(subject, "/")
	if !ok || !validTokenName(name) || s.deps.Tokens == nil {
		return principal{}, false, nil
	}
	rec, err := s.tokenRecord(ctx, name)
	if errors.Is(err, natsjs.ErrKeyNotFound) {
		return principal{}, false, nil
	}
	if err != nil {
		return principal{}, false, err
	}
	if subtle.ConstantTimeCompare([]byte(tag), []byte(sessionTag(rec))) != 1 {
		return principal{}, false, nil
	}
	return principal{team: rec.Owner, token: name}, true, nil
}

// truncate shortens a value quoted in an error.
func truncate(v string) string {
	if len(v) > 40 {
		return strings.ToValidUTF8(v[:40], "") + "…"
	}
	return v
}
