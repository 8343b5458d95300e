package main

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/internal/daemontest"
)

// recipe is one console block of the docs that subscribes an endpoint and
// publishes events: its commands, each with the output the docs show.
type recipe struct {
	file     string
	commands []recipeCommand
}

type recipeCommand struct {
	line   string
	output []string
}

// recipes returns the console blocks of file (docs/filters.md, or the
// README once it has the recipes) that create a subscription with a filter
// or a transform and publish events.
func recipes(t *testing.T, file string) []recipe {
	t.Helper()
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []recipe
	for _, m := range regexp.MustCompile("(?s)```console\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		block := m[1]
		if !strings.Contains(block, "$ webhookctl subscriptions create") || !strings.Contains(block, "$ webhookctl events publish") ||
			!strings.Contains(block, "--filter") && !strings.Contains(block, "--transform") {
			continue
		}
		r := recipe{file: file}
		for _, l := range strings.Split(strings.TrimRight(block, "\n"), "\n") {
			if cmd, ok := strings.CutPrefix(l, "$ "); ok {
				r.commands = append(r.commands, recipeCommand{line: cmd})
				continue
			}
			require.NotEmpty(t, r.commands, "%s: output before any command", file)
			last := &r.commands[len(r.commands)-1]
			last.output = append(last.output, l)
		}
		out = append(out, r)
	}
	return out
}

// flagValue returns the value of --name in a command's words.
func flagValue(words []string, name string) string {
	for i, w := range words {
		if w == name && i+1 < len(words) {
			return words[i+1]
		}
	}
	return ""
}

var (
	exampleURL = regexp.MustCompile(`https://[a-z.]+\.example\.com/\S*`)
	spaces     = regexp.MustCompile(`\s+`)
)

// outputPattern matches the output a doc shows, whatever the spacing of
// the table and the time of the sample's envelope.
func outputPattern(lines []string) *regexp.Regexp {
	quoted := regexp.QuoteMeta(spaces.ReplaceAllString(strings.TrimSpace(strings.Join(lines, "\n")), " "))
	quoted = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z`).ReplaceAllString(quoted, `\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z`)
	return regexp.MustCompile("^" + quoted + "$")
}

// The filter and transform recipes of docs/filters.md (and of the README,
// when it carries them) work as shown, against a real webhookd: every
// command succeeds, every `try` prints what the docs show, and the
// endpoint (the example URL stands for a real receiver) gets exactly the
// published events the recipe's `try` matched, with the body `try` showed
// for them when there is a transform, and both signature schemes (the HMAC
// recipe, the Standard Webhooks reference library) verify what it got.
func TestFilterAndTransformRecipes(t *testing.T) {
	t.Parallel()
	var all []recipe
	for _, f := range []string{"../../docs/filters.md", "../../README.md"} {
		all = append(all, recipes(t, f)...)
	}
	require.GreaterOrEqual(t, len(all), 2, "the chat-webhook and the severity-filter recipes")
	d := newDaemon(t)
	for i, r := range all {
		rcv, got, _ := daemontest.Receiver(t, 200, "")
		type sample struct {
			matched bool
			body    string // the body try printed
		}
		tried := map[string]sample{} // by event type and data
		var published []string       // event type and data
		transformed := false
		var secret string
		for _, c := range r.commands {
			line := exampleURL.ReplaceAllString(c.line, rcv.URL)
			words := shellWords(t, line)
			require.Equal(t, "webhookctl", words[0], "%s: %s", r.file, c.line)
			out, errOut, code := d.ctl(words[1:]...)
			require.Equal(t, 0, code, "%s: %s: %s", r.file, c.line, errOut)
			key := flagValue(words, "--event") + " " + flagValue(words, "--data")
			switch {
			case len(words) > 2 && words[1] == "subscriptions" && words[2] == "try":
				require.Regexp(t, outputPattern(c.output), spaces.ReplaceAllString(strings.TrimSpace(out), " "), "%s: %s", r.file, c.line)
				s := sample{matched: strings.HasPrefix(out, "MATCHED  yes")}
				if m := regexp.MustCompile(`(?m)^BODY\s+(.*)$`).FindStringSubmatch(out); m != nil {
					s.body = m[1]
				}
				tried[key] = s
			case len(words) > 2 && words[1] == "subscriptions" && words[2] == "create":
				transformed = flagValue(words, "--transform") != ""
				m := regexp.MustCompile(`(?m)^SECRET\s+(whsec_\S+)`).FindStringSubmatch(out)
				require.NotNil(t, m, "%s: create prints the secret: %s", r.file, out)
				secret = m[1]
			case len(words) > 2 && words[1] == "events" && words[2] == "publish":
				key = words[3] + " " + flagValue(words, "--data")
				published = append(published, key)
			}
		}
		var want []string
		for _, key := range published {
			s, ok := tried[key]
			require.True(t, ok, "%s: recipe %d publishes %q without trying it first", r.file, i, key)
			if s.matched {
				want = append(want, key)
			}
		}
		require.NotEmpty(t, want, "%s: recipe %d delivers something", r.file, i)
		for _, key := range want {
			g := daemontest.Next(t, got)
			seed, standard := signedWith(t, secret, g)
			require.True(t, seed && standard, "%s: both signatures verify the body sent", r.file)
			if transformed {
				require.JSONEq(t, tried[key].body, string(g.Body), "%s: what try showed is what arrives", r.file)
				continue
			}
			var env struct {
				Event string          `json:"event"`
				Data  json.RawMessage `json:"data"`
			}
			require.NoError(t, json.Unmarshal(g.Body, &env))
			typ, data, _ := strings.Cut(key, " ")
			require.Equal(t, typ, env.Event)
			require.JSONEq(t, data, string(env.Data), "%s: the matching event", r.file)
		}
		// The events the filter refused are never sent: once the router
		// has settled every event (a fast-path branch holds its event
		// until its attempt is recorded), nothing more has arrived.
		waitFor(t, 15*time.Second, func() bool {
			var st client.Status
			d.ctlJSON(t, &st, "status")
			for _, c := range st.Consumers {
				if c.Name == "router" && (c.Pending > 0 || c.InFlight > 0) {
					return false
				}
			}
			return true
		}, "the router to settle every event")
		require.Empty(t, got, "%s: recipe %d: an event the filter refused arrived", r.file, i)
	}
}
