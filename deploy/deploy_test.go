package deploy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// commands are the binaries the image and the unit ship.
var commands = []string{"webhookd", "webhookctl"}

// The Dockerfile and the unit rely on a static build: CGO_ENABLED=0 gives
// binaries without a dynamic loader (no PT_INTERP, no dynamic section) that
// run with nothing else in the image.
func TestStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries")
	}
	t.Parallel()
	dir := t.TempDir()
	for _, name := range commands {
		bin := filepath.Join(dir, name)
		build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/robotlab/webhookd/cmd/"+name)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := build.CombinedOutput()
		require.NoError(t, err, "build %s:\n%s", name, out)

		f, err := elf.Open(bin)
		require.NoError(t, err)
		for _, p := range f.Progs {
			require.NotEqual(t, elf.PT_INTERP, p.Type, "%s asks for a dynamic loader", name)
			require.NotEqual(t, elf.PT_DYNAMIC, p.Type, "%s has a dynamic segment", name)
		}
		require.Nil(t, f.Section(".dynamic"), "%s has a dynamic section", name)
		libs, err := f.ImportedLibraries()
		require.NoError(t, err)
		require.Empty(t, libs, "%s links shared libraries", name)
		require.NoError(t, f.Close())

		help := exec.Command(bin, "--help")
		help.Env = []string{} // nothing from the test's environment
		var stdout bytes.Buffer
		help.Stdout, help.Stderr = &stdout, io.Discard
		done := make(chan error, 1)
		require.NoError(t, help.Start())
		go func() { done <- help.Wait() }()
		select {
		case err := <-done:
			require.NoError(t, err, "%s --help exits 0", name)
		case <-time.After(time.Minute):
			_ = help.Process.Kill()
			<-done
			t.Fatalf("%s --help did not exit", name)
		}
		require.Contains(t, stdout.String(), "--data-dir", "%s --help lists its flags", name)
	}
}

// The Dockerfile cannot be built here (no registry): this checks what it
// promises instead. Multi-stage, both commands built static from the
// packages that exist, a final stage with nothing to run a shell for and a
// non-root user.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	var stages [][]string // instructions per stage, continuation lines joined
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if more, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(more + " ")
			continue
		}
		cur.WriteString(line)
		ins := cur.String()
		cur.Reset()
		if strings.HasPrefix(strings.ToUpper(ins), "FROM ") {
			stages = append(stages, nil)
		}
		require.NotEmpty(t, stages, "an instruction before the first FROM: %s", ins)
		stages[len(stages)-1] = append(stages[len(stages)-1], ins)
	}
	require.NoError(t, sc.Err())
	require.GreaterOrEqual(t, len(stages), 2, "multi-stage")

	build := strings.Join(stages[0], "\n")
	for _, name := range commands {
		re := regexp.MustCompile(`CGO_ENABLED=0 go build [^\n&]*\./cmd/` + name + `\b`)
		require.Regexp(t, re, build, "%s built static", name)
		_, err := os.Stat(filepath.Join("..", "cmd", name, "main.go"))
		require.NoError(t, err, "the Dockerfile builds ./cmd/%s, which must exist", name)
	}

	final := stages[len(stages)-1]
	var user string
	for _, ins := range final {
		word := strings.ToUpper(strings.Fields(ins)[0])
		require.NotEqual(t, "RUN", word, "the final stage runs nothing (it has no shell): %s", ins)
		if word == "USER" {
			user = strings.Fields(ins)[1]
		}
		if word == "ENTRYPOINT" || word == "CMD" {
			require.True(t, strings.HasPrefix(strings.Fields(ins)[1], "["), "exec form, no shell: %s", ins)
		}
	}
	require.NotEmpty(t, user, "the final stage sets USER")
	for _, root := range []string{"root", "0", "0:0", "root:root"} {
		require.NotEqual(t, root, user, "USER is not root")
	}
}

// The Kubernetes manifest: probes on /healthz and /readyz, the token from
// a Secret, resources, a non-root read-only container, a grace period
// longer than the shutdown timeout, and a Service in front.
func TestKubernetesManifest(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join("kubernetes", "webhookd.yaml"))
	require.NoError(t, err)
	defer f.Close()
	type probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
	}
	type container struct {
		Args []string `yaml:"args"`
		Env  []struct {
			Name      string `yaml:"name"`
			ValueFrom struct {
				SecretKeyRef struct {
					Name string `yaml:"name"`
				} `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		LivenessProbe  probe `yaml:"livenessProbe"`
		ReadinessProbe probe `yaml:"readinessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
			ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
			Capabilities             struct {
				Drop []string `yaml:"drop"`
			} `yaml:"capabilities"`
		} `yaml:"securityContext"`
	}
	type object struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Template struct {
				Spec struct {
					TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
					SecurityContext               struct {
						RunAsNonRoot bool `yaml:"runAsNonRoot"`
						RunAsUser    int  `yaml:"runAsUser"`
					} `yaml:"securityContext"`
					Containers []container `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
			Ports []struct {
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	kinds := map[string]object{}
	dec := yaml.NewDecoder(f)
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		kinds[o.Kind] = o
	}
	require.Contains(t, kinds, "Service")
	require.Equal(t, "http", kinds["Service"].Spec.Ports[0].TargetPort)
	require.Contains(t, kinds, "Deployment")
	pod := kinds["Deployment"].Spec.Template.Spec
	require.Greater(t, pod.TerminationGracePeriodSeconds, 30, "longer than the default --shutdown-timeout")
	require.True(t, pod.SecurityContext.RunAsNonRoot)
	require.NotZero(t, pod.SecurityContext.RunAsUser)
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.Contains(t, c.Args, "--http-addr=0.0.0.0:8080", "reachable by the probes")
	var token bool
	for _, e := range c.Env {
		token = token || e.Name == "WEBHOOKD_ADMIN_TOKEN" && e.ValueFrom.SecretKeyRef.Name != ""
	}
	require.True(t, token, "the admin token comes from a Secret")
	require.NotEmpty(t, c.Resources.Requests["cpu"])
	require.NotEmpty(t, c.Resources.Requests["memory"])
	require.NotEmpty(t, c.Resources.Limits["memory"])
	require.True(t, c.SecurityContext.ReadOnlyRootFilesystem)
	require.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation)
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	require.Equal(t, []string{"ALL"}, c.SecurityContext.Capabilities.Drop)
}

// The systemd unit: its own unprivileged user, a read-only system but for
// its state directory, no privilege gain, the token from a file, and more
// time to stop than the default --shutdown-timeout.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("systemd", "webhookd.service"))
	require.NoError(t, err)
	set := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			set[k] = v
		}
	}
	for k, v := range map[string]string{
		"DynamicUser": "yes", "ProtectSystem": "strict", "StateDirectory": "webhookd",
		"NoNewPrivileges": "yes", "EnvironmentFile": "/etc/webhookd/webhookd.env", "KillSignal": "SIGTERM",
	} {
		require.Equal(t, v, set[k], k)
	}
	require.Contains(t, set["ExecStart"], "--data-dir /var/lib/webhookd", "the data dir is the state directory")
	stop, err := time.ParseDuration(set["TimeoutStopSec"])
	require.NoError(t, err)
	require.Greater(t, stop, 30*time.Second, "longer than the default --shutdown-timeout")
	env, err := os.ReadFile(filepath.Join("systemd", "webhookd.env.example"))
	require.NoError(t, err)
	require.Contains(t, string(env), "WEBHOOKD_ADMIN_TOKEN=")
}
