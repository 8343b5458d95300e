package config_test

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/config"
)

// --metrics-require-token is a bool key: off by default, on as a bare flag,
// from the environment or YAML, and a bad value names the field.
func TestLoadMetricsRequireToken(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(nil, env(nil), io.Discard)
	require.NoError(t, err)
	require.False(t, cfg.MetricsRequireToken, "/metrics is open by default")

	cfg, err = config.Load([]string{"--metrics-require-token"}, env(nil), io.Discard)
	require.NoError(t, err)
	require.True(t, cfg.MetricsRequireToken)

	cfg, err = config.Load(nil, env(map[string]string{"WEBHOOKD_METRICS_REQUIRE_TOKEN": "true"}), io.Discard)
	require.NoError(t, err)
	require.True(t, cfg.MetricsRequireToken)

	cfg, err = config.Load([]string{"--config", writeYAML(t, "metrics-require-token: true\n"), "--metrics-require-token=false"}, env(nil), io.Discard)
	require.NoError(t, err)
	require.False(t, cfg.MetricsRequireToken, "the flag wins over the file")

	_, err = config.Load(nil, env(map[string]string{"WEBHOOKD_METRICS_REQUIRE_TOKEN": "maybe"}), io.Discard)
	var fe *config.FieldError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "metrics-require-token", fe.Field)
}
