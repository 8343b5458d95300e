package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/robotlab/webhookd/admin/client"
)

func (a *app) subTry() *cobra.Command {
	var in client.TryRequest
	var data string
	cmd := &cobra.Command{
		Use:   "try [ID] --event TYPE --data JSON|@FILE|- [--filter E] [--transform E]",
		Short: "Evaluate a filter and a transform against a sample event, without sending anything",
		Long: `Evaluate a filter and a transform against a sample event with the server's
own compiler, as the router and the deliverer would, and send nothing. It
prints whether the filter matches, the body that would be sent (the
transform's object, or the envelope without a transform) and each error
with its position. Given a subscription ID, its expressions stand in for
the flags not given. Exits 1 when an expression does not compile; one that
compiles but fails on the sample is printed (a filter then does not match,
a transform would fail the delivery with transform_error).`,
		Example: `  webhookctl subscriptions try --event alert.triggered --data '{"severity":"critical"}' --filter 'data.severity == "critical"'
  webhookctl subscriptions try 6f1c… --event alert.triggered --data @sample.json
  webhookctl subscriptions try --event alert.triggered --data '{"message":"hi"}' --transform '{"text": data.message}'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := a.readData(data)
			if err != nil {
				return err
			}
			in.Data = body
			if len(args) == 1 {
				in.SubscriptionID = args[0]
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			res, err := c.Try(cmd.Context(), in)
			if err != nil {
				return err
			}
			err = a.print(res, func(w *tabwriter.Writer) {
				row(w, "MATCHED", yesNo(res.Matched))
				row(w, "BODY", compactJSON(res.Body))
				for _, e := range res.Errors {
					row(w, "ERROR", exprErrorLine(e))
				}
			})
			if err != nil {
				return err
			}
			var bad []string
			for _, e := range res.Errors {
				if e.Stage == "compile" {
					bad = append(bad, e.Field)
				}
			}
			if len(bad) > 0 {
				return errors.New(strings.Join(bad, " and ") + ": does not compile")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&in.Event, "event", "", "the sample's event type (required)")
	cmd.Flags().StringVar(&data, "data", "", "the sample's data, a JSON object: inline, @FILE to read a file, or - to read stdin (required)")
	cmd.Flags().StringVar(&in.Filter, "filter", "", filterUsage+" (default: the subscription's)")
	cmd.Flags().StringVar(&in.Transform, "transform", "", transformUsage+" (default: the subscription's)")
	_ = cmd.MarkFlagRequired("event")
	_ = cmd.MarkFlagRequired("data")
	return cmd
}

// compactJSON prints a body on one line, as it is sent: the API's answer
// is indented as a whole.
func compactJSON(b json.RawMessage) string {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil || out.Len() == 0 {
		return orDash(strings.TrimSpace(string(b)))
	}
	return out.String()
}

// exprErrorLine prints an expression's error as the API's 400 does: field,
// position, message; then its stage.
func exprErrorLine(e client.ExprError) string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d, column %d: %s (%s)", e.Field, e.Line, e.Column, e.Message, e.Stage)
	}
	return fmt.Sprintf("%s: %s (%s)", e.Field, e.Message, e.Stage)
}
