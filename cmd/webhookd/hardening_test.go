package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/config"
)

// refusedStart runs webhookd on free ports and returns the error it stops
// with. A start that gets through fails the test (after the timeout).
func refusedStart(t *testing.T, lookupEnv func(string) (string, bool), args ...string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	logs := &syncBuffer{}
	err := run(ctx, append([]string{"--http-addr", freeAddr(t), "--nats-listen", freeAddr(t)}, args...), lookupEnv, logs)
	require.Error(t, err, "webhookd started:\n%s", logs)
	return err
}

// writeToken writes a token file into dir with exactly mode, whatever the umask.
func writeToken(t *testing.T, dir, token string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, tokenFile)
	require.NoError(t, os.WriteFile(path, []byte(token+"\n"), 0o600))
	require.NoError(t, os.Chmod(path, mode))
	return path
}

func TestRunRefusesShortAdminTokens(t *testing.T) {
	t.Parallel()
	short := strings.Repeat("k", config.MinAdminTokenLen-1)

	err := refusedStart(t, noEnv, "--data-dir", t.TempDir(), "--admin-token", short)
	var fe *config.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "admin-token", fe.Field)
	require.ErrorContains(t, err, "31 bytes, want at least 32")
	require.NotContains(t, err.Error(), short, "the token is never echoed")

	env := func(k string) (string, bool) {
		if k == "WEBHOOKD_ADMIN_TOKEN" {
			return short, true
		}
		return "", false
	}
	err = refusedStart(t, env, "--data-dir", t.TempDir())
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "admin-token", fe.Field)

	dir := t.TempDir()
	path := writeToken(t, dir, short, 0o600)
	err = refusedStart(t, noEnv, "--data-dir", dir)
	require.ErrorContains(t, err, path)
	require.ErrorContains(t, err, "31 bytes, want at least 32")
	require.NotContains(t, err.Error(), short)
}

// TestRunRefusesPredictableAdminTokens checks the flag and the token file:
// 32 × "a" is long enough but refused, with the flag (or file) named and a
// way to generate one, never the token.
func TestRunRefusesPredictableAdminTokens(t *testing.T) {
	t.Parallel()
	weak := strings.Repeat("a", config.MinAdminTokenLen)
	err := refusedStart(t, noEnv, "--data-dir", t.TempDir(), "--admin-token", weak)
	var fe *config.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "admin-token", fe.Field)
	require.ErrorContains(t, err, "too predictable")
	require.ErrorContains(t, err, "openssl rand -hex 32")
	require.NotContains(t, err.Error(), weak, "the token is never echoed")

	dir := t.TempDir()
	path := writeToken(t, dir, weak, 0o600)
	err = refusedStart(t, noEnv, "--data-dir", dir)
	require.ErrorContains(t, err, path)
	require.ErrorContains(t, err, "too predictable")
	require.NotContains(t, err.Error(), weak)
}

func TestRunRefusesAWritableDataDir(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o770, 0o720, 0o707, 0o702, 0o777} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			require.NoError(t, os.Chmod(dir, mode))
			err := refusedStart(t, noEnv, "--data-dir", dir)
			require.ErrorContains(t, err, "data dir "+dir+" is writable by its group or others")
			require.ErrorContains(t, err, "chmod 700 "+dir)
			_, err = os.Stat(filepath.Join(dir, dbFile))
			require.ErrorIs(t, err, os.ErrNotExist, "refused before anything is written")
		})
	}
}

func TestRunRefusesAnExposedTokenFile(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o640, 0o620, 0o604, 0o602, 0o644, 0o666} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			token := strings.Repeat("ab", 32)
			path := writeToken(t, dir, token, mode)
			err := refusedStart(t, noEnv, "--data-dir", dir)
			require.ErrorContains(t, err, "admin token file "+path+" is readable or writable by its group or others")
			require.ErrorContains(t, err, "chmod 600 "+path)
			require.NotContains(t, err.Error(), token)
		})
	}
}

func TestRunAcceptsOwnerOnlyPermissions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o750)) // readable by the group is fine, writable is not
	// A random token: a pattern would be refused as too predictable.
	token := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	writeToken(t, dir, token, 0o400)
	d := start(t, "--data-dir", dir)
	require.Equal(t, http.StatusOK, d.call(t, http.MethodGet, "/v1/event-types", token, "", nil), "the file's token is used")
	require.Contains(t, d.logs.String(), "admin token read from the data dir")
	require.NotContains(t, d.logs.String(), token)
}
