package delivery_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
)

func TestScheduleNext(t *testing.T) {
	t.Parallel()
	p := delivery.Schedule(5*time.Second, 10*time.Second, 15*time.Second)
	require.Equal(t, 4, p.MaxAttempts())
	tests := []struct {
		n     int
		delay time.Duration
		retry bool
	}{
		{0, 0, false}, {1, 5 * time.Second, true}, {2, 10 * time.Second, true},
		{3, 15 * time.Second, true}, {4, 0, false}, {9, 0, false},
	}
	for _, tt := range tests {
		d, ok := p.Next(tt.n)
		require.Equal(t, tt.retry, ok, "attempt %d", tt.n)
		require.Equal(t, tt.delay, d, "attempt %d", tt.n)
	}
	none := delivery.Schedule()
	require.Equal(t, 1, none.MaxAttempts())
	_, ok := none.Next(1)
	require.False(t, ok)
}

func TestExponentialNext(t *testing.T) {
	t.Parallel()
	p := delivery.Exponential(time.Second, 10*time.Second, 6, 0, nil)
	require.Equal(t, 7, p.MaxAttempts())
	var got []time.Duration
	for n := 1; ; n++ {
		d, ok := p.Next(n)
		if !ok {
			break
		}
		got = append(got, d)
	}
	require.Equal(t, []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}, got)

	// Jitter stays within ±jitter of the base delay and is reproducible with a seeded source.
	a := delivery.Exponential(time.Second, time.Minute, 10, 0.2, rand.New(rand.NewPCG(1, 2)))
	b := delivery.Exponential(time.Second, time.Minute, 10, 0.2, rand.New(rand.NewPCG(1, 2)))
	for n := 1; n <= 10; n++ {
		da, _ := a.Next(n)
		db, _ := b.Next(n)
		require.Equal(t, da, db)
		base := min(time.Second<<(n-1), time.Minute)
		require.InDelta(t, float64(base), float64(da), 0.2*float64(base)+1)
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	p := delivery.Schedule(time.Second, 2*time.Second)
	ok := delivery.Result{Outcome: delivery.OutcomeSucceeded}
	bad := delivery.Result{Outcome: delivery.OutcomeFailed, Reason: "http_503"}
	require.Equal(t, delivery.Decision{Status: delivery.StatusSucceeded}, p.Decide(ok, 3))
	require.Equal(t, delivery.Decision{Status: delivery.StatusRetrying, After: time.Second}, p.Decide(bad, 1))
	require.Equal(t, delivery.Decision{Status: delivery.StatusRetrying, After: 2 * time.Second}, p.Decide(bad, 2))
	require.Equal(t, delivery.Decision{Status: delivery.StatusFailed}, p.Decide(bad, 3))
	require.Equal(t, delivery.Decision{Status: delivery.StatusFailed}, p.Decide(bad, 7), "beyond the last attempt")
}
