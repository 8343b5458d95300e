package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagError is the root's FlagErrorFunc: an unknown flag gets the nearest
// flags of that command (its own and the global ones) as a suggestion, and
// every flag error names the command and its --help.
func flagError(c *cobra.Command, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		if s := suggestFlags(c, name); len(s) > 0 {
			return fmt.Errorf("unknown flag --%s for %q; did you mean %s?", name, c.CommandPath(), dashList(s))
		}
		return fmt.Errorf("unknown flag --%s for %q (%s --help lists its flags)", name, c.CommandPath(), c.CommandPath())
	}
	return errors.New(msg + fmt.Sprintf(" (%s --help lists its flags)", c.CommandPath()))
}

// suggestFlags returns the flags of c nearest to a mistyped name: those at
// the smallest edit distance, at most 2, or those it is a prefix of.
func suggestFlags(c *cobra.Command, typed string) []string {
	best, out := 3, []string(nil)
	visit := func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := editDistance(typed, f.Name)
		if len(typed) >= 3 && strings.HasPrefix(f.Name, typed) {
			d = min(d, 1)
		}
		switch {
		case d > 2:
		case d < best:
			best, out = d, []string{f.Name}
		case d == best && !slices.Contains(out, f.Name):
			out = append(out, f.Name)
		}
	}
	c.LocalFlags().VisitAll(visit)
	c.InheritedFlags().VisitAll(visit)
	slices.Sort(out)
	return out
}

// dashList is --a, --a or --b, --a, --b or --c.
func dashList(names []string) string {
	d := make([]string, len(names))
	for i, n := range names {
		d[i] = "--" + n
	}
	if len(d) < 2 {
		return strings.Join(d, "")
	}
	return strings.Join(d[:len(d)-1], ", ") + " or " + d[len(d)-1]
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
