package config_test

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/config"
)

// updateDocs rewrites docs/configuration.md from the flags: make docs.
var updateDocs = flag.Bool("update", false, "rewrite ../docs/configuration.md from webhookd's flags")

// A mistyped flag is one short line with the nearest flag, not the usage.
func TestUnknownFlagIsOneLineWithASuggestion(t *testing.T) {
	t.Parallel()
	for args, want := range map[string]string{
		"--allow-target":   "unknown flag --allow-target; did you mean --allow-targets? (webhookd --help lists the flags)",
		"--nats-lisen=x":   "unknown flag --nats-lisen; did you mean --nats-listen? (webhookd --help lists the flags)",
		"-workrs":          "unknown flag --workrs; did you mean --workers? (webhookd --help lists the flags)",
		"--retent":         "unknown flag --retent; did you mean --retention? (webhookd --help lists the flags)",
		"--frobnicate":     "unknown flag --frobnicate (webhookd --help lists the flags)",
		"--workrz9":        "unknown flag --workrz9 (webhookd --help lists the flags)", // 3 edits from --workers
		"--data-dir":       "--data-dir needs a value (webhookd --help)",
		"--nats-tls-crt=x": "unknown flag --nats-tls-crt; did you mean --nats-tls-cert? (webhookd --help lists the flags)",
	} {
		var usage strings.Builder
		_, err := config.Load([]string{args}, env(nil), &usage)
		require.EqualError(t, err, want, args)
		require.Empty(t, usage.String(), "%s: no usage printed on an error", args)
	}
}

// A YAML key with a typo gets the same suggestion.
func TestUnknownYAMLKeySuggestsTheFlag(t *testing.T) {
	t.Parallel()
	_, err := config.Load([]string{"--config", writeYAML(t, "allow-target: 127.0.0.0/8\n")}, env(nil), &strings.Builder{})
	require.ErrorContains(t, err, "allow-target: unknown key in ")
	require.ErrorContains(t, err, "; did you mean allow-targets?")
}

// An address where a CIDR is wanted gets the prefix that names it alone.
func TestAllowTargetsSuggestsAPrefixForAnAddress(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"127.0.0.1":      `config: allow-targets: --allow-targets="127.0.0.1": "127.0.0.1" is an address, not a CIDR: write 127.0.0.1/32 for that address alone`,
		"10.0.0.0/8,::1": `config: allow-targets: --allow-targets="10.0.0.0/8,::1": "::1" is an address, not a CIDR: write ::1/128 for that address alone`,
		"loopback":       `config: allow-targets: --allow-targets="loopback": "loopback" is not a CIDR such as 127.0.0.0/8 or 10.20.0.0/16`,
	} {
		_, err := config.Load([]string{"--allow-targets", in}, env(nil), &strings.Builder{})
		require.EqualError(t, err, want, in)
	}
	cfg, err := config.Load([]string{"--allow-targets", "127.0.0.1/32,10.1.2.3/8"}, env(nil), &strings.Builder{})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1/32,10.0.0.0/8", config.FormatPrefixes(cfg.AllowTargets))
}

// --help lists every flag once, under its topic, in the topics' order.
func TestHelpIsGroupedByTopic(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	_, err := config.Load([]string{"--help"}, env(nil), &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	help := out.String()
	last := -1
	for _, topic := range config.FlagTopics() {
		i := strings.Index(help, "\n"+topic.Title+":\n")
		require.Greater(t, i, last, "topic %q in order", topic.Title)
		last = i
		for _, f := range topic.Flags {
			require.Equal(t, 1, strings.Count(help, "  --"+f.Name+"\n"), "--%s listed once", f.Name)
			require.Greater(t, strings.Index(help, "  --"+f.Name+"\n"), i, "--%s under %q", f.Name, topic.Title)
		}
	}
	require.Contains(t, help, "\nStorage and memory:\n  --data-dir\n")
	require.Contains(t, help, "\nDeliveries:\n  --delivery-timeout\n")
}

// Every flag has a topic: a flag added without one lands in "Other", which
// --help should not have.
func TestEveryFlagHasATopic(t *testing.T) {
	t.Parallel()
	n := 0
	for _, topic := range config.FlagTopics() {
		require.NotEqual(t, "Other", topic.Title, "flags without a topic (add them to flagGroups in help.go): %v", topic.Flags)
		require.NotEmpty(t, topic.Flags, topic.Title)
		n += len(topic.Flags)
	}
	var out strings.Builder
	_, _ = config.Load([]string{"--help"}, env(nil), &out)
	require.Len(t, regexp.MustCompile(`(?m)^  --`).FindAllString(out.String(), -1), n)
}

// docs/configuration.md is generated from the flags (make docs) and kept
// up to date by this test.
func TestConfigurationDocIsUpToDate(t *testing.T) {
	t.Parallel()
	want := configurationDoc()
	const path = "../docs/configuration.md"
	if *updateDocs {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, want, string(got), "docs/configuration.md is out of date: run make docs")
}

// configurationDoc renders every flag, grouped by topic, as Markdown.
func configurationDoc() string {
	var b strings.Builder
	b.WriteString(`# Configuration

Every flag of ` + "`webhookd`" + `, grouped by topic as ` + "`webhookd --help`" + ` lists them. This file is
generated from the flags themselves (` + "`make docs`" + `); a test (` + "`config`" + `,
` + "`TestConfigurationDocIsUpToDate`" + `) fails when it is out of date.

Each flag is also read from the environment variable in its row and from the YAML file given
by ` + "`--config`" + ` (keys are the flag names, lists may be YAML lists); precedence is defaults < YAML <
environment < flags. A bad value stops ` + "`webhookd`" + ` at start with a one-line error naming the
flag. The key that encrypts secrets at rest may also be given itself, base64, in
` + "`" + config.EnvSecretKey + "`" + ` (never as a flag or YAML key). ` + "`make run`" + ` adds ` + "`--allow-targets 127.0.0.0/8`" + ` for local
development; ` + "`webhookd`" + `'s own default allows no internal address.
`)
	for _, topic := range config.FlagTopics() {
		fmt.Fprintf(&b, "\n## %s\n\n| flag | default | environment | |\n| --- | --- | --- | --- |\n", topic.Title)
		for _, f := range topic.Flags {
			def := "none"
			if f.Default != "" {
				def = "`" + f.Default + "`"
			}
			env := "-"
			if f.Env != "" {
				env = "`" + f.Env + "`"
			}
			fmt.Fprintf(&b, "| `--%s` | %s | %s | %s |\n", f.Name, def, env, strings.ReplaceAll(f.Usage, "|", `\|`))
		}
	}
	b.WriteString("\nBesides the flags: `webhookd --version` prints the version, VCS revision and Go version;\n`webhookd compact [--data-dir DIR]` compacts the bbolt file of a stopped replica (see\n[operations.md](operations.md#compacting-the-database)).\n")
	return b.String()
}
