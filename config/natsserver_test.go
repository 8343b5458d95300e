package config_test

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/config"
)

// The embedded server's store and connection settings read from each
// source, with their defaults.
func TestLoadEmbeddedServerLimits(t *testing.T) {
	t.Parallel()
	def := config.Default()
	require.Equal(t, int64(32<<20), def.StoreMinFree)

	yml := writeYAML(t, "store-min-free: 64MiB\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*testing.T, config.Config)
	}{
		{"yaml", []string{"--config", yml}, nil, func(t *testing.T, c config.Config) {
			require.Equal(t, int64(64<<20), c.StoreMinFree)
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
