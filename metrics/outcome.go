package metrics

import "github.com/robotlab/webhookd/delivery"

// outcomes is the closed set of webhookd_attempts_total's outcome label:
// "succeeded" or why the attempt failed. A non-2xx answer is grouped by its
// class; a reason this version does not know is "other". Never written.
var outcomes = [numOutcomes]string{
	delivery.ReasonSucceeded,
	"http_3xx", "http_4xx", "http_5xx", "http_other",
	delivery.ReasonTimeout,
	delivery.ReasonConnectionRefused,
	delivery.ReasonDNS,
	delivery.ReasonTLS,
	delivery.ReasonBlockedTarget,
	delivery.ReasonConnection,
	delivery.ReasonCancelled,
	delivery.ReasonBadRequest,
	delivery.ReasonTransform,
	"other",
}

// Outcomes returns the closed set of the outcome label, in a new slice.
func Outcomes() []string { return append([]string(nil), outcomes[:]...) }

// Indexes into outcomes.
const (
	outSucceeded = iota
	outHTTP3xx
	outHTTP4xx
	outHTTP5xx
	outHTTPOther
	outTimeout
	outConnectionRefused
	outDNS
	outTLS
	outBlockedTarget
	outConnection
	outCancelled
	outBadRequest
	outTransform
	outOther
	numOutcomes
)

// Outcome maps an attempt's reason (delivery.Classify) onto the closed set
// Outcomes.
func Outcome(reason string) string { return outcomes[outcomeIndex(reason)] }

func outcomeIndex(reason string) int {
	switch reason {
	case delivery.ReasonSucceeded:
		return outSucceeded
	case delivery.ReasonTimeout:
		return outTimeout
	case delivery.ReasonConnectionRefused:
		return outConnectionRefused
	case delivery.ReasonDNS:
		return outDNS
	case delivery.ReasonTLS:
		return outTLS
	case delivery.ReasonBlockedTarget:
		return outBlockedTarget
	case delivery.ReasonConnection:
		return outConnection
	case delivery.ReasonCancelled:
		return outCancelled
	case delivery.ReasonBadRequest:
		return outBadRequest
	case delivery.ReasonTransform:
		return outTransform
	}
	// "http_<code>", code three digits
	if len(reason) == 8 && reason[:5] == "http_" && isDigit(reason[6]) && isDigit(reason[7]) {
		switch reason[5] {
		case '3':
			return outHTTP3xx
		case '4':
			return outHTTP4xx
		case '5':
			return outHTTP5xx
		}
		if isDigit(reason[5]) {
			return outHTTPOther
		}
	}
	return outOther
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// Statuses returns the closed set of webhookd_deliveries_finished_total's
// status label, in statusIndex order.
func Statuses() []delivery.Status {
	return []delivery.Status{
		delivery.StatusSucceeded, delivery.StatusFailed, delivery.StatusCancelled,
		delivery.StatusPaused, delivery.StatusRejected,
	}
}

const numStatuses = 5 // len(Statuses())

// statusIndex returns s's index in Statuses(), or -1 when s is not final
// (pending, retrying).
func statusIndex(s delivery.Status) int {
	switch s {
	case delivery.StatusSucceeded:
		return 0
	case delivery.StatusFailed:
		return 1
	case delivery.StatusCancelled:
		return 2
	case delivery.StatusPaused:
		return 3
	case delivery.StatusRejected:
		return 4
	}
	return -1
}

// Results returns the closed set of webhookd_events_total's result label
// (the values of dispatcher's Result constants), in resultIndex order.
func Results() []string { return []string{"routed", "no_subscriber", "rejected"} }

func resultIndex(r string) int {
	switch r {
	case "routed":
		return 0
	case "no_subscriber":
		return 1
	case "rejected":
		return 2
	}
	return -1
}

// UnknownEventType is the event_type label of events whose type is not in
// the catalog (they are rejected): robots cannot make new series.
const UnknownEventType = "unknown"
