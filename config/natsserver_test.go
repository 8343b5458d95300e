package config_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/config"
)

// The embedded server's store and connection settings read from each
// source, with their defaults.
func TestLoadEmbeddedServerLimits(t *testing.T) {
	t.Parallel()
	def := config.Default()
	require.Equal(t, int64(32<<20), def.StoreMinFree)
	require.Equal(t, 1024, def.NATSMaxConnections)
	require.Equal(t, 64, def.NATSMaxRobotConnections)
	require.Equal(t, 100, def.NATSMaxRobotSubscriptions)
	require.Equal(t, int64(64<<20), def.NATSMaxPending)
	require.Equal(t, time.Second, def.NATSAuthFailureDelay)

	yml := writeYAML(t, `store-min-free: 64MiB
nats-max-connections: 500
nats-max-robot-connections: 5
nats-max-robot-subscriptions: 10
nats-max-pending: 16MiB
nats-auth-failure-delay: 2s
`)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*testing.T, config.Config)
	}{
		{"yaml", []string{"--config", yml}, nil, func(t *testing.T, c config.Config) {
			require.Equal(t, int64(64<<20), c.StoreMinFree)
			require.Equal(t, 500, c.NATSMaxConnections)
			require.Equal(t, 5, c.NATSMaxRobotConnections)
			require.Equal(t, 10, c.NATSMaxRobotSubscriptions)
			require.Equal(t, int64(16<<20), c.NATSMaxPending)
			require.Equal(t, 2*time.Second, c.NATSAuthFailureDelay)
		}},
		{"env", nil, map[string]string{"WEBHOOKD_NATS_MAX_CONNECTIONS": "2000", "WEBHOOKD_NATS_MAX_ROBOT_CONNECTIONS": "7",
			"WEBHOOKD_NATS_MAX_ROBOT_SUBSCRIPTIONS": "3", "WEBHOOKD_NATS_MAX_PENDING": "8MiB", "WEBHOOKD_NATS_AUTH_FAILURE_DELAY": "0"},
			func(t *testing.T, c config.Config) {
				require.Equal(t, 2000, c.NATSMaxConnections)
				require.Equal(t, 7, c.NATSMaxRobotConnections)
				require.Equal(t, 3, c.NATSMaxRobotSubscriptions)
				require.Equal(t, int64(8<<20), c.NATSMaxPending)
				require.Zero(t, c.NATSAuthFailureDelay)
			}},
		{"flags over env", []string{"--nats-max-connections", "300", "--nats-auth-failure-delay", "500ms"},
			map[string]string{"WEBHOOKD_NATS_MAX_CONNECTIONS": "2000"}, func(t *testing.T, c config.Config) {
				require.Equal(t, 300, c.NATSMaxConnections)
				require.Equal(t, 500*time.Millisecond, c.NATSAuthFailureDelay)
			}},
		{"env over yaml", []string{"--config", yml}, map[string]string{"WEBHOOKD_STORE_MIN_FREE": "1GiB"}, func(t *testing.T, c config.Config) {
			require.Equal(t, int64(1<<30), c.StoreMinFree)
		}},
		{"flag over env", []string{"--store-min-free", "2MiB"}, map[string]string{"WEBHOOKD_STORE_MIN_FREE": "1GiB"}, func(t *testing.T, c config.Config) {
			require.Equal(t, int64(2<<20), c.StoreMinFree)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(tt.args, env(tt.env), io.Discard)
			require.NoError(t, err)
			tt.want(t, cfg)
		})
	}
}

func TestEmbeddedServerLimitsAreValidated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args  []string
		field string
	}{
		{[]string{"--nats-max-connections", "1"}, "nats-max-connections"},
		{[]string{"--nats-max-connections", "lots"}, "nats-max-connections"},
		{[]string{"--nats-max-robot-connections", "0"}, "nats-max-robot-connections"},
		{[]string{"--nats-max-robot-subscriptions", "0"}, "nats-max-robot-subscriptions"},
		{[]string{"--nats-max-pending", "512KiB"}, "nats-max-pending"},
		{[]string{"--max-event-size", "8MiB", "--nats-max-pending", "12MiB"}, "nats-max-pending"},
		{[]string{"--nats-auth-failure-delay", "-1s"}, "nats-auth-failure-delay"},
		{[]string{"--nats-auth-failure-delay", "1m"}, "nats-auth-failure-delay"},
		{[]string{"--store-min-free", "512KiB"}, "store-min-free"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(tt.args, env(nil), io.Discard)
			var fe *config.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tt.field, fe.Field)
			require.NotContains(t, err.Error(), "\n")
		})
	}
	// They apply to the embedded server only.
	_, err := config.Load([]string{"--nats-url", "nats://127.0.0.1:4222", "--nats-max-connections", "1"}, env(nil), io.Discard)
	require.NoError(t, err)
}
