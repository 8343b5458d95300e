// Command webhookctl manages webhookd: subscriptions, deliveries, events and
// status, through the admin HTTP API of any replica. Run "webhookctl --help".
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// app holds the global flags and the input and output streams.
type app struct {
	root                           *cobra.Command
	server, token, dataDir, output string
	getenv                         func(string) string
	stdin                          io.Reader
	stdout, stderr                 io.Writer
}

// run executes one webhookctl command and returns its exit status: 0 on
// success, 1 with a one-line error on stderr otherwise. It reads
// "--data -" from os.Stdin.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return runIO(args, getenv, os.Stdin, stdout, stderr)
}

// runIO is run with the standard input given.
func runIO(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, getenv, stdin, stdout, stderr)
}

// runContext is runIO until ctx is done: what Ctrl-C does to a command
// that runs until stopped (listen).
func runContext(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "webhookctl:", oneLine(err))
		return 1
	}
	return 0
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "webhookctl",
		Short: "Manage webhookd subscriptions and deliveries",
		Long: `webhookctl manages webhookd through the admin API of any replica.

The server is taken from --server, then $WEBHOOK_SERVER, then the current
context (webhookctl context), then http://127.0.0.1:8080. The token is
taken from --token, then $WEBHOOK_TOKEN, then the current context (for its
own server only; not when --data-dir or $WEBHOOK_DATA_DIR is given), then
the file <data-dir>/admin-token that webhookd generates on first start.

Environment:
  WEBHOOK_SERVER    admin API of a webhookd replica (--server; default http://127.0.0.1:8080)
  WEBHOOK_TOKEN     admin API token, the operator's or a team's (--token)
  WEBHOOK_DATA_DIR  webhookd data dir holding the generated admin-token (--data-dir; default ./data)

Times in tables are UTC (RFC 3339, ending in Z), as in webhookd's logs.`,
		Example: `  webhookctl subscriptions create --url https://example.com/hook --events task.completed
  webhookctl deliveries list --status failed
  webhookctl -o json status | jq .consumers`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Read().String("webhookctl"),
	}
	a.root = root
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	def := func(env, fallback string) string {
		if v := a.getenv(env); v != "" {
			return v
		}
		return fallback
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", def("WEBHOOK_SERVER", "http://127.0.0.1:8080"), "admin API of a webhookd replica (env WEBHOOK_SERVER)")
	pf.StringVar(&a.token, "token", "", "admin API token (env WEBHOOK_TOKEN)")
	pf.StringVar(&a.dataDir, "data-dir", def("WEBHOOK_DATA_DIR", "./data"), "webhookd data dir to read the generated admin-token from")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(a.subscriptionsCommand(), a.deliveriesCommand(), a.eventsCommand(), a.statusCommand(),
		a.verifyCommand(), a.contextCommand(), a.tokensCommand(), a.listenCommand())
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		RunE: func(_ *cobra.Command, args []string) error {
			cmd, rest, err := root.Find(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				return unknownCommand(cmd, rest[0])
			}
			return cmd.Help()
		},
	})
	return group(root)
}

// group makes cmd, which only holds subcommands, print its help when given
// none and fail on an unknown one (cobra would print the help and exit 0).
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.SuggestionsMinimumDistance = 2 // cobra's default, set only on the root otherwise
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		return unknownCommand(c, args[0])
	}
	return cmd
}

// unknownCommand is the one-line error for a mistyped subcommand of c, with
// the nearest names (cobra's SuggestionsFor) when there are any.
func unknownCommand(c *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, c.CommandPath())
	if s := c.SuggestionsFor(name); len(s) > 0 {
		return fmt.Errorf("%s; did you mean %s?", msg, quoteList(s))
	}
	names := []string{}
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() {
			names = append(names, sub.Name())
		}
	}
	return fmt.Errorf("%s; want one of %s", msg, quoteList(names))
}

// quoteList is "a", "a" or "b", "a", "b" or "c".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// client builds the API client from the global flags, the environment
// and the current context (see endpoint).
func (a *app) client() (*client.Client, error) {
	if err := a.checkOutput(); err != nil {
		return nil, err
	}
	server, token, err := a.endpoint()
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, fmt.Errorf("no admin token: pass --token, set WEBHOOK_TOKEN, save a context (webhookctl context add), or point --data-dir at webhookd's data dir")
	}
	return client.New(server, token)
}

func (a *app) checkOutput() error {
	if a.output != "table" && a.output != "json" {
		return fmt.Errorf("-o %q: want table or json", a.output)
	}
	return nil
}

// endpoint resolves the server and the token, each from its flag, else its
// environment variable, else the current context, else the default
// server and the token file <data-dir>/admin-token. The context's token
// goes only to the context's own server, and a --data-dir (or
// WEBHOOK_DATA_DIR) given names the token file to use instead.
func (a *app) endpoint() (server, token string, err error) {
	pf := a.root.PersistentFlags()
	server, token = a.server, a.token // a.server's default is WEBHOOK_SERVER's value, if set
	serverGiven := pf.Changed("server") || a.getenv("WEBHOOK_SERVER") != ""
	dataDirGiven := pf.Changed("data-dir") || a.getenv("WEBHOOK_DATA_DIR") != ""
	if token == "" {
		token = a.getenv("WEBHOOK_TOKEN")
	}
	if !serverGiven || token == "" && !dataDirGiven {
		c, ok, err := a.currentContext()
		if err != nil {
			return "", "", err
		}
		if ok {
			if !serverGiven {
				server = c.Server
			}
			if token == "" && !dataDirGiven && strings.TrimRight(server, "/") == c.Server {
				token = c.Token
			}
		}
	}
	if token == "" {
		b, err := os.ReadFile(filepath.Join(a.dataDir, "admin-token"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", "", fmt.Errorf("read token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return server, token, nil
}
