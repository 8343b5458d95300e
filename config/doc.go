// Package config holds webhookd's single Config struct and loads it from, in
// rising precedence, built-in defaults, a YAML file (--config), WEBHOOKD_*
// environment variables and command-line flags.
//
// Every flag is also read from the environment as WEBHOOKD_<NAME> (upper case,
// "-" replaced by "_") and from the YAML key of the same name. Validate reports
// the first bad field as a *FieldError naming the field and the reason.
//
// The package imports nothing of ours: cmd/webhookd copies the fields each
// other package needs into that package's own Config.
package config
