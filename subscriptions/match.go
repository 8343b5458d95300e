package subscriptions

import "strings"

// MatchPattern reports whether eventType matches pattern, using NATS subject
// rules: tokens are separated by ".", "*" matches exactly one token and ">"
// (last token only) matches one or more. A pattern without wildcards matches
// only itself.
func MatchPattern(pattern, eventType string) bool {
	for {
		ptok, prest, pmore := strings.Cut(pattern, ".")
		etok, erest, emore := strings.Cut(eventType, ".")
		switch {
		case ptok == ">":
			return !pmore && etok != ""
		case etok == "":
			return false
		case ptok != "*" && ptok != etok:
			return false
		}
		if !pmore || !emore {
			return pmore == emore
		}
		pattern, eventType = prest, erest
	}
}

// ValidPattern reports whether p is an event type or a pattern: non-empty
// tokens, "*" and ">" only as whole tokens, ">" only last.
func ValidPattern(p string) bool {
	if p == "" || len(p) > 128 {
		return false
	}
	toks := strings.Split(p, ".")
	for i, tok := range toks {
		switch {
		case tok == "":
			return false
		case tok == ">":
			if i != len(toks)-1 {
				return false
			}
		case tok == "*":
		default:
			for _, r := range tok {
				if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
					return false
				}
			}
		}
	}
	return true
}
