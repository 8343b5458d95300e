package config_test

import (
	"math"
	"math/big"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/robotlab/webhookd/config"
)

// FuzzParseBackoffString checks, beyond FuzzParseBackoff, that a refusal is
// one line, that an accepted schedule has at most 100 retries, and that
// String writes it back in a form ParseBackoff reads to the same schedule.
func FuzzParseBackoffString(f *testing.F) {
	for _, s := range []string{
		"5s,10s,15s", " 100ms , 1m ", "", ",", "1.5h", "exp:5s:1h:12:0.2", "exp:1s:1s:0", "exp:1ns:2562047h47m16.854775807s:100:1",
		"exp:1s:2s:3:1e-300", "exp:1s:2s:3:-0", "exp:1s:2s:3:NaN", "exp:1s:2s:3:0x1p-2", "exp:1s:2s:+3", "exp: 1s:2s:3", "EXP:1s:1s:1",
		"9223372036854775807ns", "9223372036854775808ns", "1\n2", "5s\x00", "\xff", strings.Repeat("1s,", 99) + "1s", strings.Repeat("1s,", 100) + "1s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := config.ParseBackoff(s)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("ParseBackoff(%q) error spans lines: %q", s, err.Error())
			}
			return
		}
		if len(b.Delays) > 100 || b.Retries > 100 {
			t.Fatalf("ParseBackoff(%q) = %d delays, %d retries: at most 100", s, len(b.Delays), b.Retries)
		}
		again, err := config.ParseBackoff(b.String())
		if err != nil {
			t.Fatalf("ParseBackoff(%q) = %+v, whose String %q does not parse: %v", s, b, b.String(), err)
		}
		if !reflect.DeepEqual(again, b) {
			t.Fatalf("ParseBackoff(%q) = %+v, String %q reads back as %+v", s, b, b.String(), again)
		}
	})
}

// sizeRE matches a whole number with an optional unit, the form ParseSize
// documents.
var sizeRE = regexp.MustCompile(`^\s*([0-9]+)\s*(TiB|GiB|MiB|KiB|TB|GB|MB|KB|kB|B)?\s*$`)

var sizeFactors = map[string]int64{
	"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
	"kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
}

// FuzzParseSize checks ParseSize: it never panics, refuses with a one-line
// error, never returns a negative size, reads "<number><unit>" as the exact
// product whenever it fits in an int64 (and refuses it otherwise, never
// wrapping around), and reads back what FormatSize writes.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{
		"0", "1048576", "512KiB", " 1 MiB ", "10GB", "1kB", "8388607TiB", "8388608TiB", "9223372036854775807", "9223372036854775807B",
		"9223372036854775808", "-1", "-0", "+5", "1.5MiB", "1e6", "0x10", "MiB", "", "5 KiB B", "1\x00", "١", "9223372036854775807KiB",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := config.ParseSize(s)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("ParseSize(%q) error spans lines: %q", s, err.Error())
			}
		} else if n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		if m := sizeRE.FindStringSubmatch(s); m != nil {
			want, _ := new(big.Int).SetString(m[1], 10)
			want.Mul(want, big.NewInt(sizeFactors[m[2]]))
			switch fits := want.Cmp(big.NewInt(math.MaxInt64)) <= 0; {
			case fits && (err != nil || n != want.Int64()):
				t.Fatalf("ParseSize(%q) = %d, %v: want %s", s, n, err, want)
			case !fits && err == nil:
				t.Fatalf("ParseSize(%q) = %d: want an error, %s does not fit in an int64", s, n, want)
			}
		}
		if err != nil {
			return
		}
		back, err := config.ParseSize(config.FormatSize(n))
		if err != nil || back != n {
			t.Fatalf("ParseSize(FormatSize(%d) = %q) = %d, %v", n, config.FormatSize(n), back, err)
		}
	})
}
