package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/robotlab/webhookd/internal/suggest"
)

// flagError is the root's FlagErrorFunc: an unknown flag gets the nearest
// flags of that command (its own and the global ones) as a suggestion, and
// every flag error names the command and its --help.
func flagError(c *cobra.Command, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		if s := suggestFlags(c, name); len(s) > 0 {
			return fmt.Errorf("unknown flag --%s for %q; did you mean %s?", name, c.CommandPath(), suggest.DashList(s))
		}
		return fmt.Errorf("unknown flag --%s for %q (%s --help lists its flags)", name, c.CommandPath(), c.CommandPath())
	}
	return errors.New(msg + fmt.Sprintf(" (%s --help lists its flags)", c.CommandPath()))
}

// suggestFlags returns the flags of c (its own and the inherited ones)
// nearest to a mistyped name.
func suggestFlags(c *cobra.Command, typed string) []string {
	var names []string
	visit := func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	}
	c.LocalFlags().VisitAll(visit)
	c.InheritedFlags().VisitAll(visit)
	return suggest.Nearest(typed, names)
}
