package config_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/config"
)

func TestSecretKeySources(t *testing.T) {
	t.Parallel()
	const key = "c2VjcmV0IGtleSBvZiB0aGlydHktdHdvIGJ5dGVzISE=" // never echoed
	cfg, err := config.Load(nil, env(map[string]string{config.EnvSecretKey: key}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, key, cfg.SecretKey)
	require.Empty(t, cfg.SecretKeyFile)

	cfg, err = config.Load([]string{"--secret-key-file", "/etc/webhookd/key"}, env(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "/etc/webhookd/key", cfg.SecretKeyFile)
	cfg, err = config.Load(nil, env(map[string]string{"WEBHOOKD_SECRET_KEY_FILE": "/k"}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "/k", cfg.SecretKeyFile)
	cfg, err = config.Load([]string{"--config", writeYAML(t, "secret-key-file: /y\n")}, env(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "/y", cfg.SecretKeyFile)

	// Both: a clear error that does not show the key.
	_, err = config.Load([]string{"--secret-key-file", "/k"}, env(map[string]string{config.EnvSecretKey: key}), io.Discard)
	var fe *config.FieldError
	require.True(t, errors.As(err, &fe), "%v", err)
	require.Equal(t, "secret-key-file", fe.Field)
	require.ErrorContains(t, err, "not both")
	require.NotContains(t, err.Error(), key)

	// The key itself is no flag and no YAML key, so it stays out of process
	// listings and config files; --help names the variable, never a value.
	_, err = config.Load([]string{"--secret-key", key}, env(nil), io.Discard)
	require.Error(t, err)
	_, err = config.Load([]string{"--config", writeYAML(t, "secret-key: "+key+"\n")}, env(nil), io.Discard)
	require.ErrorContains(t, err, "unknown key")
	var help strings.Builder
	_, _ = config.Load([]string{"--help"}, env(map[string]string{config.EnvSecretKey: key}), &help)
	require.Contains(t, help.String(), "--secret-key-file")
	require.Contains(t, help.String(), config.EnvSecretKey)
	require.NotContains(t, help.String(), key)
}
