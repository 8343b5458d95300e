// Package version describes the running binary for --version: the module
// version, the VCS revision the Go toolchain stamped into the build info,
// and the Go version it was built with. Both webhookd and webhookctl use it.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is what a binary knows about its own build.
type Info struct {
	// Version is the main module's version: a tag such as v1.2.0, a
	// pseudo-version for an untagged commit, or "(devel)".
	Version string
	// Revision is the VCS commit, or "unknown" when the build carries none
	// (go run, go test, or a build outside a checkout).
	Revision string
	// Time is the commit time (RFC 3339), empty when unknown.
	Time string
	// Modified reports uncommitted changes in the checkout at build time.
	Modified bool
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string
}

// Read returns the running binary's Info.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuildInfo(bi, ok)
}

func fromBuildInfo(bi *debug.BuildInfo, ok bool) Info {
	in := Info{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}
	if !ok || bi == nil {
		return in
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	if v := bi.Main.Version; v != "" {
		in.Version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				in.Revision = s.Value
			}
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String returns one line naming the program, e.g.
// "webhookctl v0.3.1 (revision 41f16ec…, 2026-11-29T10:00:00Z) go1.26.8".
func (in Info) String(program string) string {
	var b strings.Builder
	b.WriteString(program + " " + in.Version + " (revision " + in.Revision)
	if in.Time != "" {
		b.WriteString(", " + in.Time)
	}
	if in.Modified {
		b.WriteString(", modified")
	}
	b.WriteString(") " + in.GoVersion)
	return b.String()
}
