package version

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFromBuildInfo(t *testing.T) {
	t.Parallel()
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261129100000-41f16ec0a1b2"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "41f16ec0a1b2c3d4e5f60718293a4b5c6d7e8f90"},
			{Key: "vcs.time", Value: "2026-11-29T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"stamped", stamped, true,
			"webhookd v0.0.0-20261129100000-41f16ec0a1b2 (revision 41f16ec0a1b2c3d4e5f60718293a4b5c6d7e8f90, 2026-11-29T10:00:00Z, modified) go1.26.8"},
		{"tagged clean", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"}}}, true,
			"webhookd v1.2.0 (revision abc) go1.26.8"},
		{"go run", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true,
			"webhookd (devel) (revision unknown) go1.26.8"},
		{"no build info", nil, false, "webhookd (devel) (revision unknown) " + runtime.Version()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, fromBuildInfo(tc.bi, tc.ok).String("webhookd"))
		})
	}
}

func TestReadNamesTheRunningGo(t *testing.T) {
	t.Parallel()
	require.Equal(t, runtime.Version(), Read().GoVersion)
}
