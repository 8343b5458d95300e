package main

import (
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/robotlab/webhookd/admin/client"
)

func (a *app) tokensCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "tokens",
		Aliases: []string{"token"},
		Short:   "Create, list and delete team tokens (with the operator's token)",
		Long: `A team token sees and manages only the subscriptions labelled owner=TEAM,
and their deliveries; everything else answers "not found". Only the
operator's token (webhookd's admin-token) manages tokens.`,
		Example: `  webhookctl tokens create --name team-a-ci --owner team-a
  webhookctl tokens list
  webhookctl tokens delete team-a-ci`,
	}
	cmd.AddCommand(a.tokenCreate(), a.tokenList(), a.tokenDelete())
	return group(cmd)
}

func (a *app) tokenCreate() *cobra.Command {
	var in client.TokenInput
	cmd := &cobra.Command{
		Use:     "create --name NAME --owner TEAM",
		Short:   "Create a team token and print it (shown only now)",
		Example: "  webhookctl tokens create --name team-a-ci --owner team-a",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			tok, err := c.CreateToken(cmd.Context(), in)
			if err != nil {
				return err
			}
			return a.print(tok, func(w *tabwriter.Writer) {
				row(w, "NAME", tok.Name)
				row(w, "OWNER", tok.Owner)
				row(w, "CREATED", ts(tok.CreatedAt))
				row(w, "TOKEN", tok.Token+"   (shown only now: give it to the team)")
			})
		},
	}
	cmd.Flags().StringVar(&in.Name, "name", "", "name of the token: lower-case letters, digits, '-' and '_' (required)")
	cmd.Flags().StringVar(&in.Owner, "owner", "", "team whose subscriptions (label owner=TEAM) the token manages (required)")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("owner")
	return cmd
}

func (a *app) tokenList() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the team tokens (never their values)",
		Example: "  webhookctl tokens list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			toks, err := c.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(client.List[client.Token]{Items: toks}, func(w *tabwriter.Writer) {
				row(w, "NAME", "OWNER", "CREATED")
				for _, t := range toks {
					row(w, t.Name, t.Owner, ts(t.CreatedAt))
				}
			})
		},
	}
}

func (a *app) tokenDelete() *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a team token: every replica refuses it from its next request",
		Example: "  webhookctl tokens delete team-a-ci",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.DeleteToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.output == "json" {
				return a.print(map[string]string{"deleted": args[0]}, nil)
			}
			_, err = a.stdout.Write([]byte("deleted " + args[0] + "\n"))
			return err
		},
	}
}
