package config_test

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/config"
)

func TestLoadNATSClientOptions(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(nil, env(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, 1, cfg.StreamReplicas, "one copy by default")

	cfg, err = config.Load([]string{"--nats-url", "nats://n1:4222,nats://n2:4222", "--stream-replicas", "3",
		"--nats-user", "webhookd", "--nats-tls-ca", "ca.pem", "--nats-tls-cert", "c.pem", "--nats-tls-key", "k.pem"},
		env(map[string]string{"WEBHOOKD_NATS_PASSWORD": "pw-from-env"}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, 3, cfg.StreamReplicas)
	require.Equal(t, "webhookd", cfg.NATSUser)
	require.Equal(t, "pw-from-env", cfg.NATSPassword, "the password may come from the environment")
	require.Equal(t, "ca.pem", cfg.NATSTLSCA)

	cfg, err = config.Load(nil, env(map[string]string{"WEBHOOKD_NATS_URL": "nats://n1:4222", "WEBHOOKD_NATS_TOKEN": "tok"}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "tok", cfg.NATSToken)
}

func TestLoadRefusesBadNATSClientOptions(t *testing.T) {
	t.Parallel()
	url := []string{"--nats-url", "nats://n1:4222"}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		field string
		not   string // must not appear in the error
	}{
		{"zero replicas", append(url, "--stream-replicas", "0"), nil, "stream-replicas", ""},
		{"six replicas", append(url, "--stream-replicas", "6"), nil, "stream-replicas", ""},
		{"replicas on the embedded server", []string{"--stream-replicas", "3"}, nil, "stream-replicas", ""},
		{"creds without url", []string{"--nats-creds", "x.creds"}, nil, "nats-creds", ""},
		{"tls without url", []string{"--nats-tls-ca", "ca.pem"}, nil, "nats-tls-ca", ""},
		{"token env without url", nil, map[string]string{"WEBHOOKD_NATS_TOKEN": "s3cret-token"}, "nats-token", "s3cret-token"},
		{"user without password", append(url, "--nats-user", "u"), nil, "nats-user", ""},
		{"password without user", url, map[string]string{"WEBHOOKD_NATS_PASSWORD": "s3cret-pw"}, "nats-password", "s3cret-pw"},
		{"password twice", append(url, "--nats-user", "u", "--nats-password-file", "pw"), map[string]string{"WEBHOOKD_NATS_PASSWORD": "s3cret-pw"}, "nats-password-file", "s3cret-pw"},
		{"token twice", append(url, "--nats-token", "s3cret-token", "--nats-token-file", "t"), nil, "nats-token-file", "s3cret-token"},
		{"creds and token", append(url, "--nats-creds", "x.creds", "--nats-token", "s3cret-token"), nil, "nats-token", "s3cret-token"},
		{"seed and user", append(url, "--nats-nkey-seed", "seed", "--nats-user", "u", "--nats-password-file", "pw"), nil, "nats-user", ""},
		{"cert without key", append(url, "--nats-tls-cert", "c.pem"), nil, "nats-tls-cert", ""},
		{"key without cert", append(url, "--nats-tls-key", "k.pem"), nil, "nats-tls-cert", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(tt.args, env(tt.env), io.Discard)
			var fe *config.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tt.field, fe.Field, err.Error())
			require.NotContains(t, err.Error(), "\n", "one line")
			if tt.not != "" {
				require.NotContains(t, err.Error(), tt.not, "secrets are never echoed")
			}
		})
	}
}
