// Package faults is webhookd's fault suite (issue 22): it runs the real
// webhookd binary against real loopback receivers, publishes through a real
// robot NATS connection, injects one fault at a time (kill -9 of a replica,
// SIGTERM and restart, a NATS server restart, a cluster leader killed, a
// full disk, a damaged bbolt file, a hanging receiver, a connection flood)
// and reports, for each, the events acknowledged, the deliveries lost and
// duplicated, and the time to recover, as a Markdown table.
//
// It is slow and starts real processes, so it runs only when
// WEBHOOKD_FAULTS=1, as `make faults` sets; docs/faults.md explains each
// fault and shows the table measured.
package faults
