package console

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// exact formats a time as the console shows it exactly: RFC 3339, UTC, to
// the second ("2026-11-29T14:12:06Z"); "" for the zero time.
func exact(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// ago formats how long before now t was ("42s ago", "3m ago", "5h ago",
// "2d ago"), or how long after ("in 3m") for a time to come.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int(d/time.Hour))
	default:
		s = fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// rate formats a success rate with its number of attempts, as webhookctl
// prints it: "77.42% of 31"; "no attempts" without a rate.
func rate(r *float64, attempts int) string {
	if r == nil {
		return "no attempts"
	}
	return fmt.Sprintf("%.4g%% of %d", 100**r, attempts)
}

// acronyms are the words a label spells in capitals.
var acronyms = map[string]string{"id": "ID", "url": "URL", "ids": "IDs", "urls": "URLs", "http": "HTTP",
	"1h": "(1 h)", "24h": "(24 h)", "ms": "(ms)", "json": "JSON", "cel": "CEL"}

// label turns an API field name into a label: "payload_note" → "Payload
// note", "event_id" → "Event ID", "success_rate_1h" → "Success rate (1 h)".
func label(key string) string {
	words := strings.FieldsFunc(key, func(r rune) bool { return r == '_' || r == '-' || r == ' ' })
	for i, w := range words {
		if a, ok := acronyms[strings.ToLower(w)]; ok {
			words[i] = a
			continue
		}
		words[i] = strings.ToLower(w)
	}
	s := strings.Join(words, " ")
	if s == "" {
		return key
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// plural is "1 attempt", "3 attempts".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
