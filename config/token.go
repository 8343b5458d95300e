package config

import (
	"fmt"
	"math"
	"strings"
)

// MinAdminTokenBits is the least entropy an admin token must show, in bits,
// estimated from its own characters (see WeakToken). 32 random hex digits
// show about 110 (rarely under 90), 32 random base64 characters about 140; a word repeated or
// a keyboard run shows far less.
const MinAdminTokenBits = 80

// WeakToken returns why token is too predictable to guard the admin API,
// or "" when it is not. It catches what people type instead of generating:
// few distinct characters (32 × "a"), a short pattern repeated
// ("passwordpassword…"), runs of neighbouring characters ("abcdef…",
// "123456…"), and an empirical Shannon entropy (character frequencies times
// length) under MinAdminTokenBits. It is a floor, not a proof of
// randomness. The reason never repeats the token.
func WeakToken(token string) string {
	n := len(token)
	if n == 0 {
		return ""
	}
	counts := map[byte]int{}
	for i := 0; i < n; i++ {
		counts[token[i]]++
	}
	if len(counts) < 8 {
		return fmt.Sprintf("only %d distinct characters", len(counts))
	}
	for p := 1; p <= n/2; p++ {
		if n%p == 0 && strings.Repeat(token[:p], n/p) == token {
			return fmt.Sprintf("a %d-character pattern repeated", p)
		}
	}
	steps := 0 // neighbours one apart or equal: "aaaa", "abcd", "4321"
	for i := 1; i < n; i++ {
		if d := int(token[i]) - int(token[i-1]); d >= -1 && d <= 1 {
			steps++
		}
	}
	if steps*2 > n-1 {
		return "mostly runs of neighbouring characters"
	}
	bits := 0.0
	for _, c := range counts {
		p := float64(c) / float64(n)
		bits -= float64(c) * math.Log2(p)
	}
	if bits < MinAdminTokenBits {
		return fmt.Sprintf("about %.0f bits of entropy, want at least %d", bits, MinAdminTokenBits)
	}
	return ""
}
