// Package suggest finds the names nearest to a mistyped one, for the
// "did you mean" hints of webhookd's and webhookctl's flag errors.
package suggest

import (
	"slices"
	"strings"
)

// Nearest returns the names nearest to typed, sorted and without repeats:
// those at the smallest edit distance, at most 2, counting a name that
// typed (three characters or more) is a prefix of as distance 1.
func Nearest(typed string, names []string) []string {
	best, out := 3, []string(nil)
	for _, n := range names {
		d := editDistance(typed, n)
		if len(typed) >= 3 && strings.HasPrefix(n, typed) {
			d = min(d, 1)
		}
		switch {
		case d > 2:
		case d < best:
			best, out = d, []string{n}
		case d == best && !slices.Contains(out, n):
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// DashList writes names as flags: --a, --a or --b, --a, --b or --c.
func DashList(names []string) string {
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
