package jetstream

import "strings"

// Names of the streams, consumers and bucket webhookd provisions.
const (
	StreamEvents        = "EVENTS"
	StreamDeliveries    = "DELIVERIES"
	StreamAudit         = "AUDIT"
	ConsumerRouter      = "router"
	ConsumerWorkers     = "workers"
	BucketSubscriptions = "subscriptions"
	// BucketRevokedSessions holds the console sessions ended by logout,
	// each for a session's lifetime, so that every replica refuses them.
	BucketRevokedSessions = "console_revoked_sessions"
	// BucketTeamTokens holds the team tokens: name → owner, creation time
	// and the SHA-256 of the token (never the token), read by every replica
	// at each request, so a deleted token is refused everywhere at once.
	BucketTeamTokens = "team_tokens"

	// EventsPrefix is the subject prefix robots publish under.
	EventsPrefix = "events."
	// DeliveriesPrefix is the subject prefix of delivery jobs.
	DeliveriesPrefix = "deliveries."
	// AuditPrefix is the subject prefix of audit records.
	AuditPrefix = "audit."
	// ListenPrefix is the subject prefix of the signed requests the router
	// publishes, with core NATS, for `webhookctl listen` (ListenSubject).
	ListenPrefix = "webhookd.listen."
)

// ListenSubject returns the subject of the signed requests for the listen
// subscription subID, which the admin API streams to its listener.
func ListenSubject(subID string) string { return ListenPrefix + subID }

// EventSubject returns the subject an event of type t is published on.
func EventSubject(t string) string { return EventsPrefix + t }

// EventType returns the event type of an EVENTS subject, or "" when the
// subject is not under EventsPrefix.
func EventType(subject string) string {
	t, ok := strings.CutPrefix(subject, EventsPrefix)
	if !ok {
		return ""
	}
	return t
}

// DeliverySubject returns the subject of a job for subscription subID.
func DeliverySubject(subID string) string { return DeliveriesPrefix + subID }

// AuditRecords is the filter of every audit record: one token after the
// prefix, so the jobs kept beside them (AuditJobSubject) do not match.
const AuditRecords = AuditPrefix + "*"

// AuditJobSubject returns the subject of a job kept in AUDIT for
// subscription subID, so a failed or held delivery can be sent again.
func AuditJobSubject(subID string) string { return AuditSubject(subID) + ".job" }

// AuditSubject returns the subject of an audit record for subscription subID
// ("none" for records that belong to no subscription, such as rejections).
func AuditSubject(subID string) string {
	if subID == "" {
		subID = "none"
	}
	return AuditPrefix + subID
}
