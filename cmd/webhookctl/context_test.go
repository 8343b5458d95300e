package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// tokenServer is an admin API stand-in that answers GET /v1/event-types
// and records the bearer token of each request.
type tokenServer struct {
	*httptest.Server
	mu     sync.Mutex
	tokens []string
}

func newTokenServer(t *testing.T) *tokenServer {
	t.Helper()
	s := &tokenServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.tokens = append(s.tokens, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(client.EventTypeList{Items: []string{"task.completed"}})
	}))
	t.Cleanup(s.Close)
	return s
}

// last returns the token of the last request, and whether there was one.
func (s *tokenServer) last() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tokens) == 0 {
		return "", false
	}
	tok := s.tokens[len(s.tokens)-1]
	s.tokens = nil
	return tok, true
}

// ctlEnv runs webhookctl with exactly the environment in env.
func ctlEnv(env map[string]string, stdin string, args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	code := runIO(args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestContextsAreSavedPrivatelyAndNeverListTheirTokens(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	env := map[string]string{"XDG_CONFIG_HOME": home}
	const labToken, prodToken = "lab-token-0123456789abcdef0123456789", "prod-token-0123456789abcdef012345678"
	lab, prod := newTokenServer(t), newTokenServer(t)

	out, errOut, code := ctlEnv(env, "", "context", "add", "lab", "--server", lab.URL, "--token", labToken)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "context lab saved (current)")
	out, errOut, code = ctlEnv(env, prodToken+"\n", "context", "add", "prod", "--server", prod.URL+"/", "--token", "-")
	require.Equal(t, 0, code, errOut)
	require.NotContains(t, out, "(current)", "the first context stays current")

	path := filepath.Join(home, "webhookctl", "config.json")
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	st, err = os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), st.Mode().Perm())

	table, errOut, code := ctlEnv(env, "", "context", "list")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^\*\s+lab\s+`+regexpQuote(lab.URL)+`$`, table)
	require.Regexp(t, `(?m)^\s+prod\s+`+regexpQuote(prod.URL)+`$`, table)
	js, _, code := ctlEnv(env, "", "-o", "json", "context", "list")
	require.Equal(t, 0, code)
	for _, s := range []string{table, js} {
		require.NotContains(t, s, labToken)
		require.NotContains(t, s, prodToken)
	}

	_, errOut, code = ctlEnv(env, "", "context", "use", "prod")
	require.Equal(t, 0, code, errOut)
	_, errOut, code = ctlEnv(env, "", "events", "types")
	require.Equal(t, 0, code, errOut)
	tok, ok := prod.last()
	require.True(t, ok, "the current context's server is used")
	require.Equal(t, prodToken, tok)

	_, errOut, code = ctlEnv(env, "", "context", "remove", "prod")
	require.Equal(t, 0, code, errOut)
	_, errOut, code = ctlEnv(env, "", "context", "use", "prod")
	require.Equal(t, 1, code)
	require.Equal(t, "webhookctl: no context \"prod\" (webhookctl context list)\n", errOut)

	// A file others may read is refused, not used.
	require.NoError(t, os.Chmod(path, 0o644))
	out, errOut, code = ctlEnv(env, "", "context", "list")
	requireOneLineError(t, []string{"context", "list"}, out, errOut, code, "others may read it (mode 0644): chmod 600")
}

// The server and the token each come from the flag, else the environment,
// else the current context, else the default server and <data-dir>/admin-token;
// a context's token goes only to its own server.
func TestContextPrecedence(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	ctxSrv, other := newTokenServer(t), newTokenServer(t)
	dataDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, "admin-token"), []byte("file-token\n"), 0o600))
	base := map[string]string{"XDG_CONFIG_HOME": home}
	_, errOut, code := ctlEnv(base, "", "context", "add", "lab", "--server", ctxSrv.URL, "--token", "context-token")
	require.Equal(t, 0, code, errOut)
	with := func(kv ...string) map[string]string {
		env := map[string]string{"XDG_CONFIG_HOME": home}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		flags []string
		srv   *tokenServer
		token string
	}{
		{"context alone", base, nil, ctxSrv, "context-token"},
		{"token flag over context", base, []string{"--token", "flag-token"}, ctxSrv, "flag-token"},
		{"token env over context", with("WEBHOOK_TOKEN", "env-token"), nil, ctxSrv, "env-token"},
		{"token flag over env", with("WEBHOOK_TOKEN", "env-token"), []string{"--token", "flag-token"}, ctxSrv, "flag-token"},
		{"server env over context, whose token stays home", with("WEBHOOK_SERVER", other.URL, "WEBHOOK_DATA_DIR", dataDir), nil, other, "file-token"},
		{"server flag over env", with("WEBHOOK_SERVER", ctxSrv.URL), []string{"--server", other.URL, "--token", "t"}, other, "t"},
		{"data dir given over the context's token", base, []string{"--data-dir", dataDir}, ctxSrv, "file-token"},
		{"no context: data dir", map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "WEBHOOK_SERVER": other.URL}, []string{"--data-dir", dataDir}, other, "file-token"},
	} {
		args := append(append([]string{}, tc.flags...), "events", "types")
		_, errOut, code := ctlEnv(tc.env, "", args...)
		require.Equal(t, 0, code, "%s: %s", tc.name, errOut)
		tok, ok := tc.srv.last()
		require.True(t, ok, "%s: the request went to the wrong server", tc.name)
		require.Equal(t, tc.token, tok, tc.name)
	}
	// Another server named, no token anywhere else (the test's working
	// directory has no ./data): the context's token is not sent to it.
	_, errOut, code = ctlEnv(base, "", "--server", other.URL, "events", "types")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no admin token")
	_, ok := other.last()
	require.False(t, ok)
}

func TestContextAddNeedsServerAndToken(t *testing.T) {
	t.Parallel()
	env := map[string]string{"XDG_CONFIG_HOME": t.TempDir()}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"context", "add", "lab", "--server", "http://127.0.0.1:1"}, "give both --server and --token"},
		{[]string{"context", "add", "lab", "--token", "x"}, "give both --server and --token"},
		{[]string{"context", "add", "a b", "--server", "http://127.0.0.1:1", "--token", "x"}, "context name"},
		{[]string{"context", "add", "lab", "--server", "ftp://x", "--token", "x"}, "want an http(s) URL"},
	} {
		out, errOut, code := ctlEnv(env, "", tc.args...)
		requireOneLineError(t, tc.args, out, errOut, code, tc.want)
	}
	_, err := os.Stat(filepath.Join(env["XDG_CONFIG_HOME"], "webhookctl"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing saved")
}
