package delivery

// Status is a delivery's state.
type Status string

// Delivery statuses. Pending, retrying and paused deliveries are still
// queued; the others are final until a manual redelivery.
const (
	StatusPending   Status = "pending"
	StatusRetrying  Status = "retrying"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusPaused    Status = "paused"
	StatusCancelled Status = "cancelled"
	// StatusRejected marks an event that was not routed (e.g. its body is
	// not a JSON object); it has no subscription.
	StatusRejected Status = "rejected"
)

// ParseStatus returns the status named s, and false for an unknown name.
func ParseStatus(s string) (Status, bool) {
	switch st := Status(s); st {
	case StatusPending, StatusRetrying, StatusSucceeded, StatusFailed, StatusPaused, StatusCancelled, StatusRejected:
		return st, true
	}
	return "", false
}

// Final reports whether no further attempt will be made without an operator.
func (s Status) Final() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusCancelled, StatusRejected:
		return true
	}
	return false
}
