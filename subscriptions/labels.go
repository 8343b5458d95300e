package subscriptions

import (
	"fmt"
	"maps"
	"slices"
)

// Limits of a subscription's labels.
const (
	// OwnerLabel is the label that says which team owns a subscription: a
	// team's token sees and manages only the subscriptions whose owner is
	// its team.
	OwnerLabel = "owner"
	// MaxLabels bounds the number of labels.
	MaxLabels = 16
	// MaxLabelBytes bounds a label's key and its value.
	MaxLabelBytes = 63
)

// Owner returns the subscription's owner label, or "" when it has none.
func (s Subscription) Owner() string { return s.Labels[OwnerLabel] }

// ValidateLabels checks a subscription's labels: at most MaxLabels, each key
// and value 1 to MaxLabelBytes of ASCII letters, digits, '-', '_' and '.',
// starting with a letter or digit (keys lower case). Its errors wrap
// ErrInvalid.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fmt.Errorf("%w: labels: %d given: want at most %d", ErrInvalid, len(labels), MaxLabels)
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if err := ValidateLabel(k, labels[k]); err != nil {
			return err
		}
	}
	return nil
}

// ValidateLabel checks one label (see ValidateLabels).
func ValidateLabel(key, value string) error {
	if !labelWord(key, true) {
		return fmt.Errorf("%w: labels: key %q: want 1 to %d lower-case letters, digits, '-', '_' or '.', starting with a letter or digit",
			ErrInvalid, truncateName(key), MaxLabelBytes)
	}
	if !labelWord(value, false) {
		return fmt.Errorf("%w: labels: %s=%q: want a value of 1 to %d letters, digits, '-', '_' or '.', starting with a letter or digit",
			ErrInvalid, key, truncateName(value), MaxLabelBytes)
	}
	return nil
}

// labelWord reports whether v is a label key (lower case only) or value.
func labelWord(v string, lower bool) bool {
	if v == "" || len(v) > MaxLabelBytes {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || !lower && c >= 'A' && c <= 'Z'
		if !alnum && (i == 0 || c != '-' && c != '_' && c != '.') {
			return false
		}
	}
	return true
}
