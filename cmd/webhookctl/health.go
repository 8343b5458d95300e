package main

import (
	"fmt"
	"strconv"

	"github.com/robotlab/webhookd/admin/client"
)

// The health columns of `subscriptions list`: success rate and attempts
// over the last hour and 24 hours, failures in a row and the last answer
// (from every replica's attempts), and this replica's circuit breaker.
var healthColumns = []any{"OK 1H", "OK 24H", "FAILS", "LAST", "BREAKER"}

func healthCells(s client.Subscription) []any {
	cells := []any{"-", "-", "-", "-", "-"}
	if st := s.Stats; st != nil {
		cells[0] = successRate(st.SuccessRate1h, st.Attempts1h)
		cells[1] = successRate(st.SuccessRate24h, st.Attempts24h)
		cells[2] = strconv.Itoa(st.ConsecutiveFailures)
		switch {
		case st.LastStatusCode != 0:
			cells[3] = strconv.Itoa(st.LastStatusCode)
		case st.LastReason != "":
			cells[3] = st.LastReason
		}
	}
	if h := s.Health; h != nil {
		cells[4] = h.Breaker
	}
	return cells
}

// successRate prints a success rate with its number of attempts: "97.5% of 312".
func successRate(r *float64, attempts int) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.4g%% of %d", 100**r, attempts)
}
