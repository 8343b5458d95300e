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
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/robotlab/webhookd/admin/client"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// app holds the global flags and the output streams.
type app struct {
	server, token, dataDir, output string
	getenv                         func(string) string
	stdout, stderr                 io.Writer
}

// run executes one webhookctl command and returns its exit status: 0 on
// success, 1 with a one-line error on stderr otherwise.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{getenv: getenv, stdout: stdout, stderr: stderr}
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

The token is taken from --token, then $WEBHOOK_TOKEN, then the file
<data-dir>/admin-token that webhookd generates on first start.`,
		Example: `  webhookctl subscriptions create --url https://example.com/hook --events task.completed
  webhookctl deliveries list --status failed
  webhookctl -o json status | jq .consumers`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
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
	root.AddCommand(a.subscriptionsCommand(), a.deliveriesCommand(), a.eventsCommand(), a.statusCommand())
	return root
}

// client builds the API client from the global flags.
func (a *app) client() (*client.Client, error) {
	if a.output != "table" && a.output != "json" {
		return nil, fmt.Errorf("-o %q: want table or json", a.output)
	}
	token := a.token
	if token == "" {
		token = a.getenv("WEBHOOK_TOKEN")
	}
	if token == "" {
		b, err := os.ReadFile(filepath.Join(a.dataDir, "admin-token"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return nil, fmt.Errorf("no admin token: pass --token, set WEBHOOK_TOKEN, or point --data-dir at webhookd's data dir")
	}
	return client.New(a.server, token)
}
