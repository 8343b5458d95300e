package config_test

import (
	"errors"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/config"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeYAML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "webhookd.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(nil, env(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, config.Default(), cfg)
	require.Equal(t, "./data", cfg.DataDir)
	require.Equal(t, "127.0.0.1:4222", cfg.NATSListen)
	require.Equal(t, "127.0.0.1:8080", cfg.HTTPAddr)
	require.Equal(t, 30*time.Second, cfg.DeliveryTimeout)
	require.Equal(t, []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second}, cfg.RetryBackoff.Delays)
	require.Equal(t, "json", cfg.LogFormat)
	require.Equal(t, config.StoreSync{Interval: time.Second}, cfg.StoreSync, "a single node fsyncs every second")
	require.False(t, cfg.NATSAllowAnonymous)
	require.Empty(t, cfg.NATSUsersFile)
}

func TestLoadNATSAuthAndStoreSync(t *testing.T) {
	t.Parallel()
	yml := writeYAML(t, `
nats-users-file: /etc/webhookd/robots.yaml
nats-allow-anonymous: true
store-sync: 1s
`)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want config.Config
	}{
		{"yaml", []string{"--config", yml}, nil,
			config.Config{NATSUsersFile: "/etc/webhookd/robots.yaml", NATSAllowAnonymous: true, StoreSync: config.StoreSync{Interval: time.Second}}},
		{"env over yaml", []string{"--config", yml}, map[string]string{"WEBHOOKD_NATS_ALLOW_ANONYMOUS": "false", "WEBHOOKD_STORE_SYNC": "always"},
			config.Config{NATSUsersFile: "/etc/webhookd/robots.yaml", StoreSync: config.StoreSync{Always: true}}},
		{"bare bool flag", []string{"--nats-allow-anonymous", "--store-sync", "250ms"}, nil,
			config.Config{NATSAllowAnonymous: true, StoreSync: config.StoreSync{Interval: 250 * time.Millisecond}}},
		{"bool flag set false over yaml", []string{"--config", yml, "--nats-allow-anonymous=false", "--store-sync", "ALWAYS"}, nil,
			config.Config{NATSUsersFile: "/etc/webhookd/robots.yaml", StoreSync: config.StoreSync{Always: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(tt.args, env(tt.env), io.Discard)
			require.NoError(t, err)
			require.Equal(t, tt.want.NATSUsersFile, cfg.NATSUsersFile)
			require.Equal(t, tt.want.NATSAllowAnonymous, cfg.NATSAllowAnonymous)
			require.Equal(t, tt.want.StoreSync, cfg.StoreSync)
		})
	}
}

func TestParseStoreSync(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]config.StoreSync{
		"always": {Always: true}, " Always ": {Always: true}, "1s": {Interval: time.Second}, "2m0s": {Interval: 2 * time.Minute},
	} {
		got, err := config.ParseStoreSync(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
		again, err := config.ParseStoreSync(got.String())
		require.NoError(t, err)
		require.Equal(t, got, again, "String round-trips %q", in)
	}
	for _, in := range []string{"", "never", "0s", "-1s", "1", "sometimes"} {
		_, err := config.ParseStoreSync(in)
		require.ErrorContains(t, err, "want always or a positive duration", "%q", in)
	}
	c := config.Default()
	c.StoreSync = config.StoreSync{}
	var fe *config.FieldError
	require.ErrorAs(t, c.Validate(), &fe, "a config built in code is checked too")
	require.Equal(t, "store-sync", fe.Field)
}

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	yml := writeYAML(t, `
data-dir: /from/yaml
http-addr: 127.0.0.1:9000
delivery-timeout: 11s
retry-backoff: [1s, 2s]
allow-targets: [127.0.0.0/8, "10.1.2.3/8"]
workers: 3
max-ack-pending: 50
`)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(*testing.T, config.Config)
	}{
		{"yaml over defaults", []string{"--config", yml}, nil, func(t *testing.T, c config.Config) {
			require.Equal(t, "/from/yaml", c.DataDir)
			require.Equal(t, 11*time.Second, c.DeliveryTimeout)
			require.Equal(t, []time.Duration{time.Second, 2 * time.Second}, c.RetryBackoff.Delays)
			require.Equal(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}, c.AllowTargets)
			require.Equal(t, 3, c.Workers)
			require.Equal(t, "127.0.0.1:4222", c.NATSListen, "untouched keys keep their default")
		}},
		{"env over yaml", []string{"--config", yml}, map[string]string{"WEBHOOKD_DATA_DIR": "/from/env", "WEBHOOKD_DELIVERY_TIMEOUT": "12s"}, func(t *testing.T, c config.Config) {
			require.Equal(t, "/from/env", c.DataDir)
			require.Equal(t, 12*time.Second, c.DeliveryTimeout)
			require.Equal(t, "127.0.0.1:9000", c.HTTPAddr)
		}},
		{"flags over env", []string{"--config", yml, "--data-dir", "/from/flag", "--retry-backoff=exp:1s:1m:5:0.1"}, map[string]string{"WEBHOOKD_DATA_DIR": "/from/env"}, func(t *testing.T, c config.Config) {
			require.Equal(t, "/from/flag", c.DataDir)
			require.True(t, c.RetryBackoff.Exponential())
			require.Equal(t, 5, c.RetryBackoff.Retries)
		}},
		{"config file from env", nil, map[string]string{"WEBHOOKD_CONFIG": yml}, func(t *testing.T, c config.Config) {
			require.Equal(t, "/from/yaml", c.DataDir)
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

func TestLoadErrorsNameTheField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		yaml  string
		field string
	}{
		{"bad duration flag", []string{"--delivery-timeout", "soon"}, nil, "", "delivery-timeout"},
		{"negative timeout", []string{"--delivery-timeout", "-1s"}, nil, "", "delivery-timeout"},
		{"bad backoff", []string{"--retry-backoff", "5s,zero"}, nil, "", "retry-backoff"},
		{"bad cidr env", nil, map[string]string{"WEBHOOKD_ALLOW_TARGETS": "localhost"}, "", "allow-targets"},
		{"bad log format", []string{"--log-format", "xml"}, nil, "", "log-format"},
		{"bad log level", []string{"--log-level", "loud"}, nil, "", "log-level"},
		{"bad nats listen", []string{"--nats-listen", "4222"}, nil, "", "nats-listen"},
		{"bad http addr", []string{"--http-addr", "localhost"}, nil, "", "http-addr"},
		{"zero workers", []string{"--workers", "0"}, nil, "", "workers"},
		{"store-min-free under 1MiB", []string{"--store-min-free", "512KiB"}, nil, "", "store-min-free"},
		{"store-min-free not a size", nil, map[string]string{"WEBHOOKD_STORE_MIN_FREE": "lots"}, "", "store-min-free"},
		{"workers not a number", []string{"--workers", "many"}, nil, "", "workers"},
		{"ack pending below workers", []string{"--workers", "10", "--max-ack-pending", "5"}, nil, "", "max-ack-pending"},
		{"bad event type", []string{"--event-types", "task.*"}, nil, "", "event-types"},
		{"bad store sync", []string{"--store-sync", "never"}, nil, "", "store-sync"},
		{"zero store sync", nil, map[string]string{"WEBHOOKD_STORE_SYNC": "0s"}, "", "store-sync"},
		{"bad bool flag", []string{"--nats-allow-anonymous=maybe"}, nil, "", "nats-allow-anonymous"},
		{"bad bool env", nil, map[string]string{"WEBHOOKD_NATS_ALLOW_ANONYMOUS": "yes please"}, "", "nats-allow-anonymous"},
		{"bad bool yaml", nil, nil, "nats-allow-anonymous: maybe\n", "nats-allow-anonymous"},
		{"users file with external nats", []string{"--nats-url", "nats://n1:4222", "--nats-users-file", "robots.yaml"}, nil, "", "nats-users-file"},
		{"unknown yaml key", nil, nil, "data_dir: x\n", "data_dir"},
		{"bad yaml value", nil, nil, "workers: [a, {b: c}]\n", "workers"},
		{"bad pprof addr", []string{"--pprof-addr", "localhost:sixty"}, nil, "", "pprof-addr"},
		{"negative event retention", []string{"--event-retention", "-1h"}, nil, "", "event-retention"},
		{"bad event retention bytes", []string{"--event-retention-bytes", "lots"}, nil, "", "event-retention-bytes"},
		{"tiny dedup window", []string{"--dedup-window", "1s"}, nil, "", "dedup-window"},
		{"dedup window under ack-wait", []string{"--dedup-window", "30s"}, nil, "", "ack-wait"},
		{"tiny memory limit", []string{"--memory-limit", "1MiB"}, nil, "", "memory-limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if tt.yaml != "" {
				args = append(args, "--config", writeYAML(t, tt.yaml))
			}
			_, err := config.Load(args, env(tt.env), io.Discard)
			var fe *config.FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tt.field, fe.Field)
			require.Contains(t, err.Error(), tt.field)
		})
	}
}

func TestLoadHelpAndMissingFile(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	_, err := config.Load([]string{"--help"}, env(nil), &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	for _, name := range []string{"--data-dir", "--nats-url", "--nats-listen", "--http-addr", "--admin-token",
		"--delivery-timeout", "--retry-backoff", "--allow-targets", "--log-level", "--log-format", "--config",
		"--nats-users-file", "--nats-allow-anonymous", "--store-sync"} {
		require.Contains(t, out.String(), name)
	}
	_, err = config.Load([]string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}, env(nil), io.Discard)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.True(t, errors.Is(err, os.ErrNotExist))
}

func TestParseBackoff(t *testing.T) {
	t.Parallel()
	ok := []struct {
		in   string
		want config.Backoff
	}{
		{"5s,10s,15s", config.Backoff{Delays: []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second}}},
		{" 100ms , 1m ", config.Backoff{Delays: []time.Duration{100 * time.Millisecond, time.Minute}}},
		{"", config.Backoff{Delays: []time.Duration{}}},
		{"exp:5s:1h:12", config.Backoff{Initial: 5 * time.Second, Max: time.Hour, Retries: 12}},
		{"exp:1s:1s:0:0.5", config.Backoff{Initial: time.Second, Max: time.Second, Retries: 0, Jitter: 0.5}},
	}
	for _, tt := range ok {
		got, err := config.ParseBackoff(tt.in)
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
		again, err := config.ParseBackoff(got.String())
		require.NoError(t, err)
		require.Equal(t, got, again, "String round-trips %q", tt.in)
	}
	for _, in := range []string{"5", "5s,,10s", "-1s", "0s", "exp:", "exp:5s:1s:3", "exp:5s:1m:-1", "exp:5s:1m:3:2", "exp:5s:1m:3:x", "exp:a:b:c", strings.Repeat("1s,", 100) + "1s"} {
		_, err := config.ParseBackoff(in)
		require.Error(t, err, "%q", in)
	}
}

func FuzzParseBackoff(f *testing.F) {
	for _, s := range []string{"5s,10s,15s", "exp:5s:1h:12:0.2", "", "1ms", "exp:1s:1s:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := config.ParseBackoff(s)
		if err != nil {
			return
		}
		if b.Exponential() {
			if b.Initial <= 0 || b.Max < b.Initial || b.Retries < 0 || b.Jitter < 0 || b.Jitter > 1 {
				t.Fatalf("%q parsed to invalid %+v", s, b)
			}
			return
		}
		for _, d := range b.Delays {
			if d <= 0 {
				t.Fatalf("%q parsed to non-positive delay %s", s, d)
			}
		}
	})
}

func TestPprofListen(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(nil, env(nil), io.Discard)
	require.NoError(t, err)
	require.Empty(t, cfg.PprofListen(), "off by default")
	for in, want := range map[string]string{
		"6060": "127.0.0.1:6060", ":6060": "127.0.0.1:6060",
		"localhost:6060": "localhost:6060", "0.0.0.0:6060": "0.0.0.0:6060",
	} {
		cfg, err := config.Load([]string{"--pprof-addr", in}, env(nil), io.Discard)
		require.NoError(t, err, in)
		require.Equal(t, want, cfg.PprofListen(), in)
	}
}

func TestEventsAndMemoryFlags(t *testing.T) {
	t.Parallel()
	def := config.Default()
	require.Equal(t, 24*time.Hour, def.EventRetention)
	require.EqualValues(t, 1<<30, def.RetainedEventBytes(), "1 GiB fits under max-store/8")
	require.Equal(t, 2*time.Minute, def.DedupWindow)
	require.EqualValues(t, 512<<20, def.MemoryLimit)

	cfg, err := config.Load([]string{"--event-retention", "0", "--event-retention-bytes", "0", "--max-store", "1GiB",
		"--dedup-window", "90s", "--memory-limit", "256MiB"}, env(nil), io.Discard)
	require.NoError(t, err)
	require.Zero(t, cfg.EventRetention, "0 purges once routed")
	require.EqualValues(t, 128<<20, cfg.RetainedEventBytes(), "no cap of its own: half of EVENTS's quarter of max-store")
	require.Equal(t, 90*time.Second, cfg.DedupWindow)
	require.EqualValues(t, 256<<20, cfg.MemoryLimit)

	cfg.EventRetentionBytes = 4 << 30
	require.EqualValues(t, 128<<20, cfg.RetainedEventBytes(), "never more than that half")
	cfg.MaxStore = 0
	require.EqualValues(t, 4<<30, cfg.RetainedEventBytes(), "no max-store: the flag alone")
}
