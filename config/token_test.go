package config_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/config"
)

// TestAdminTokenRefusedWhenPredictable checks that --admin-token (and its
// variable) refuses tokens long enough but typed rather than generated,
// with an error naming the flag and how to generate one, never the token;
// generated tokens of the usual forms pass.
func TestAdminTokenRefusedWhenPredictable(t *testing.T) {
	t.Parallel()
	weak := []string{
		strings.Repeat("a", 32),
		strings.Repeat("ab", 16),
		strings.Repeat("password", 4),
		strings.Repeat("0123456789", 4),
		"abcdefghijklmnopqrstuvwxyz012345",
		strings.Repeat("Tr0ub4dor&3", 3),
	}
	for _, tok := range weak {
		_, err := config.Load([]string{"--admin-token", tok}, env(nil), io.Discard)
		var fe *config.FieldError
		require.ErrorAs(t, err, &fe, tok)
		require.Equal(t, "admin-token", fe.Field, tok)
		require.Contains(t, err.Error(), "too predictable", tok)
		require.Contains(t, err.Error(), "openssl rand -hex 32", tok)
		require.NotContains(t, err.Error(), tok)
		_, err = config.Load(nil, env(map[string]string{"WEBHOOKD_ADMIN_TOKEN": tok}), io.Discard)
		require.ErrorAs(t, err, &fe, "from the environment: %s", tok)
	}
	for range 200 {
		raw := make([]byte, 32)
		_, _ = rand.Read(raw)
		for _, tok := range []string{hex.EncodeToString(raw), hex.EncodeToString(raw[:16]), base64.StdEncoding.EncodeToString(raw[:24])} {
			require.Empty(t, config.WeakToken(tok), tok)
			_, err := config.Load([]string{"--admin-token", tok}, env(nil), io.Discard)
			require.NoError(t, err, tok)
		}
	}
	require.Empty(t, config.WeakToken("s3cret-token-of-exactly-32-bytes"), "a typed but varied token passes")
}
