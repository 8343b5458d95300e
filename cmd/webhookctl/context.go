package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/robotlab/webhookd/admin/client"
)

// contextFile is the saved contexts: named servers with their tokens, and
// which one is current. It holds tokens, so it is written with mode 0600
// in a directory of mode 0700, and refused when others may read it.
type contextFile struct {
	Current  string                  `json:"current,omitempty"`
	Contexts map[string]savedContext `json:"contexts"`
}

// savedContext is one named server and its token.
type savedContext struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

// contextView is a context as "context list" shows it: never its token.
type contextView struct {
	Name    string `json:"name"`
	Server  string `json:"server"`
	Current bool   `json:"current"`
}

// contextPath is where the contexts are saved: the user's config dir
// (os.UserConfigDir; $XDG_CONFIG_HOME first on every system, so a test or a
// user can move it), then webhookctl/config.json.
func (a *app) contextPath() (string, error) {
	dir := a.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		var err error
		if dir, err = os.UserConfigDir(); err != nil {
			return "", fmt.Errorf("contexts: %w", err)
		}
	}
	return filepath.Join(dir, "webhookctl", "config.json"), nil
}

// loadContexts reads the contexts; a missing file is none.
func (a *app) loadContexts() (*contextFile, string, error) {
	path, err := a.contextPath()
	if err != nil {
		return nil, "", err
	}
	cf := &contextFile{Contexts: map[string]savedContext{}}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cf, path, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("contexts: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("contexts: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, "", fmt.Errorf("contexts: %s holds tokens but others may read it (mode %04o): chmod 600 %s", path, st.Mode().Perm(), path)
	}
	if err := json.NewDecoder(f).Decode(cf); err != nil {
		return nil, "", fmt.Errorf("contexts: %s: %w", path, err)
	}
	if cf.Contexts == nil {
		cf.Contexts = map[string]savedContext{}
	}
	return cf, path, nil
}

// save writes the contexts to path through a temporary file, mode 0600, in
// a directory of mode 0700.
func (cf *contextFile) save(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("contexts: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("contexts: %w", err)
	}
	b, err := json.MarshalIndent(cf, "", "  ")
	if err != nil {
		return fmt.Errorf("contexts: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.json") // mode 0600
	if err != nil {
		return fmt.Errorf("contexts: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing left
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("contexts: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("contexts: write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("contexts: %w", err)
	}
	return nil
}

// currentContext returns the current context, if any.
func (a *app) currentContext() (savedContext, bool, error) {
	cf, _, err := a.loadContexts()
	if err != nil {
		return savedContext{}, false, err
	}
	c, ok := cf.Contexts[cf.Current]
	return c, ok, nil
}

func (a *app) contextCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use: "context", Aliases: []string{"contexts", "ctx"}, Short: "Save servers and tokens by name, and pick the current one",
		Long: `A context is a named admin API address and token, saved in the user's
config dir (webhookctl/config.json, mode 0600). The current context gives
--server and --token when neither the flag nor the environment does:
flag > environment > current context > <data-dir>/admin-token. Its token
is only ever sent to its own server.`,
		Example: `  webhookctl context add lab --server http://10.0.0.5:8080 --token "$LAB_TOKEN"
  webhookctl context use lab
  webhookctl context list`,
	}
	add := &cobra.Command{
		Use:   "add NAME --server URL --token TOKEN|-",
		Short: "Save a server and its token under NAME (the first one saved becomes current)",
		Example: `  webhookctl context add lab --server http://10.0.0.5:8080 --token "$LAB_TOKEN"
  pass show webhookd/lab | webhookctl context add lab --server http://10.0.0.5:8080 --token -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !validContextName(name) {
				return fmt.Errorf("context name %q: want letters, digits, '.', '_' or '-'", name)
			}
			flags := cmd.Flags()
			if !flags.Changed("server") || !flags.Changed("token") {
				return errors.New("context add: give both --server and --token")
			}
			token := a.token
			if token == "-" {
				line, err := bufio.NewReader(a.stdin).ReadString('\n')
				if err != nil && line == "" {
					return fmt.Errorf("--token -: read stdin: %w", err)
				}
				token = strings.TrimSpace(line)
			}
			if token == "" {
				return errors.New("--token: empty")
			}
			if _, err := client.New(a.server, token); err != nil {
				return err
			}
			cf, path, err := a.loadContexts()
			if err != nil {
				return err
			}
			cf.Contexts[name] = savedContext{Server: strings.TrimRight(a.server, "/"), Token: token}
			if cf.Current == "" {
				cf.Current = name
			}
			if err := cf.save(path); err != nil {
				return err
			}
			note := ""
			if cf.Current == name {
				note = " (current)"
			}
			fmt.Fprintf(a.stdout, "context %s saved%s in %s\n", name, note, path)
			return nil
		},
	}
	use := &cobra.Command{
		Use: "use NAME", Short: "Make NAME the current context", Example: "  webhookctl context use lab",
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cf, path, err := a.loadContexts()
			if err != nil {
				return err
			}
			if _, ok := cf.Contexts[args[0]]; !ok {
				return fmt.Errorf("no context %q (webhookctl context list)", args[0])
			}
			cf.Current = args[0]
			if err := cf.save(path); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "context %s is current\n", args[0])
			return nil
		},
	}
	list := &cobra.Command{
		Use: "list", Short: "List the saved contexts (never their tokens)", Example: "  webhookctl context list",
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			cf, _, err := a.loadContexts()
			if err != nil {
				return err
			}
			views := []contextView{}
			for name, c := range cf.Contexts {
				views = append(views, contextView{Name: name, Server: c.Server, Current: name == cf.Current})
			}
			slices.SortFunc(views, func(x, y contextView) int { return strings.Compare(x.Name, y.Name) })
			return a.print(client.List[contextView]{Items: views}, func(w *tabwriter.Writer) {
				row(w, "CURRENT", "NAME", "SERVER")
				for _, v := range views {
					mark := ""
					if v.Current {
						mark = "*"
					}
					row(w, mark, v.Name, v.Server)
				}
			})
		},
	}
	remove := &cobra.Command{
		Use: "remove NAME", Aliases: []string{"rm", "delete"}, Short: "Forget a context and its token",
		Example: "  webhookctl context remove lab",
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cf, path, err := a.loadContexts()
			if err != nil {
				return err
			}
			if _, ok := cf.Contexts[args[0]]; !ok {
				return fmt.Errorf("no context %q (webhookctl context list)", args[0])
			}
			delete(cf.Contexts, args[0])
			if cf.Current == args[0] {
				cf.Current = ""
			}
			if err := cf.save(path); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "context %s removed\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(add, use, list, remove)
	return group(cmd)
}

func validContextName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
