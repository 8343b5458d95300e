package config

import "fmt"

// FieldError reports a configuration field with a bad value. Match it with
// errors.As to learn which field was wrong.
type FieldError struct {
	Field  string // the flag / YAML name, e.g. "retry-backoff"
	Reason string
	Err    error // underlying parse error, if any
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("config: %s: %s", e.Field, e.Reason)
}

// Unwrap returns the underlying parse error, if any.
func (e *FieldError) Unwrap() error { return e.Err }
