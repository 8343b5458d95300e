package config

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/robotlab/webhookd/internal/suggest"
)

// flagGroup is one topic of webhookd's flags, as --help and
// docs/configuration.md list them.
type flagGroup struct {
	title string
	keys  []string
}

// otherGroup holds flags that no group names; TestEveryFlagHasATopic keeps
// it empty.
const otherGroup = "Other"

// configKey is the flag naming the YAML file; it has no Config field.
const configKey = "config"

// flagGroups orders the flags by topic. General comes last: webhookd adds
// --version to it.
var flagGroups = []flagGroup{
	{"Storage and memory", []string{"data-dir", "retention", "history", "max-store", "secret-key-file", "memory-limit", "dedup-window"}},
	{"Robots: the embedded NATS server", []string{"nats-listen", "nats-users-file", keyAllowAnonymous, "store-sync",
		"store-min-free", "nats-max-connections", "nats-max-robot-connections", "nats-max-robot-subscriptions",
		"nats-max-pending", "nats-auth-failure-delay"}},
	{"External NATS cluster", []string{"nats-url", "stream-replicas", "nats-creds", "nats-nkey-seed", "nats-user",
		"nats-password", "nats-password-file", "nats-token", "nats-token-file", "nats-tls-ca", "nats-tls-cert", "nats-tls-key"}},
	{"Events", []string{"event-types", "event-schemas", "max-event-size", "event-retention", "event-retention-bytes"}},
	{"Deliveries", []string{"delivery-timeout", "retry-backoff", "allow-targets", "workers", "max-in-flight",
		"breaker-failures", "breaker-cooldown", "disable-after", "secret-grace"}},
	{"Queue and shutdown", []string{"ack-wait", "max-ack-pending", "shutdown-timeout"}},
	{"Admin API and observability", []string{"http-addr", "admin-token", keyMetricsRequireToken, "otlp-endpoint", "pprof-addr",
		"http-read-timeout", "http-public-per-client", "console-session-ttl", "listen-grace", "listen-buffer"}},
	{"General", []string{configKey, "log-level", "log-format"}},
}

// FlagDoc describes one flag of webhookd for its help and its reference
// documentation.
type FlagDoc struct {
	Name    string // without the dashes
	Usage   string
	Default string // "" when empty
	Env     string // the environment variable read for it; "" for none
}

// FlagTopic is a titled list of flags.
type FlagTopic struct {
	Title string
	Flags []FlagDoc
}

// FlagTopics returns every flag of webhookd grouped by topic, in the order
// --help prints them. A flag that no topic names is listed under "Other".
func FlagTopics() []FlagTopic {
	def := Default()
	docs := map[string]FlagDoc{configKey: {Name: configKey, Usage: "YAML file with any of these keys", Env: "WEBHOOKD_CONFIG"}}
	for _, f := range fields() {
		docs[f.name] = FlagDoc{Name: f.name, Usage: f.usage, Default: f.get(&def), Env: EnvName(f.name)}
	}
	var topics []FlagTopic
	seen := map[string]bool{}
	for _, g := range flagGroups {
		t := FlagTopic{Title: g.title}
		for _, k := range g.keys {
			if d, ok := docs[k]; ok {
				t.Flags = append(t.Flags, d)
				seen[k] = true
			}
		}
		topics = append(topics, t)
	}
	var other []FlagDoc
	for _, f := range fields() {
		if !seen[f.name] {
			other = append(other, docs[f.name])
		}
	}
	if len(other) > 0 { // before General, which webhookd extends with --version
		last := len(topics) - 1
		topics = append(topics[:last], FlagTopic{Title: otherGroup, Flags: other}, topics[last])
	}
	return topics
}

// PrintUsage writes webhookd's --help: its flags grouped by topic.
func PrintUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: webhookd [flags]\n\nEach flag is also read from WEBHOOKD_<NAME> and from the --config YAML file.\nPrecedence: defaults < YAML < environment < flags.\n")
	for _, t := range FlagTopics() {
		fmt.Fprintf(w, "\n%s:\n", t.Title)
		for _, f := range t.Flags {
			usage := f.Usage
			if f.Name != configKey {
				usage += " (default " + strconv.Quote(f.Default) + ")"
			}
			fmt.Fprintf(w, "  --%s\n        %s\n", f.Name, usage)
		}
	}
}

// flagError turns an error of the flag package into one short line that
// names the flag with two dashes and, for an unknown flag, suggests the
// nearest ones.
func flagError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		if s := suggestFlags(name); len(s) > 0 {
			return fmt.Errorf("unknown flag --%s; did you mean %s? (webhookd --help lists the flags)", name, suggest.DashList(s))
		}
		return fmt.Errorf("unknown flag --%s (webhookd --help lists the flags)", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return fmt.Errorf("--%s needs a value (webhookd --help)", strings.TrimLeft(name, "-"))
	}
	return errors.New(msg)
}

// suggestFlags returns the flag names nearest to a mistyped one.
func suggestFlags(typed string) []string {
	names := []string{configKey}
	for _, f := range fields() {
		names = append(names, f.name)
	}
	return suggest.Nearest(typed, names)
}

// parsePrefix reads one --allow-targets entry. A bare address is refused
// with the prefix that names it alone.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err == nil {
		return p.Masked(), nil
	}
	if a, aerr := netip.ParseAddr(s); aerr == nil {
		a = a.WithZone("")
		return netip.Prefix{}, fmt.Errorf("%q is an address, not a CIDR: write %s for that address alone", s, netip.PrefixFrom(a, a.BitLen()))
	}
	return netip.Prefix{}, fmt.Errorf("%q is not a CIDR such as 127.0.0.0/8 or 10.20.0.0/16", s)
}
