package throttle_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/robotlab/webhookd/internal/throttle"
)

// clock is a settable clock for the limiters.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestFailuresPerAddress(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_000_000, 0)}
	f := throttle.New(throttle.Config{PerAddr: 1, PerAddrBurst: 3, Global: 100, GlobalBurst: 100, Now: c.now})
	a, b := "192.0.2.1", "192.0.2.2"
	for i := range 3 {
		require.Zero(t, f.Wait(a), "failure %d is within the burst", i+1)
		require.Equal(t, i == 2, f.Fail(a), "the third failure uses the budget up")
	}
	require.Equal(t, time.Second, f.Wait(a), "one failure earned back per second")
	require.Zero(t, f.Wait(b), "another address is not slowed")
	c.t = c.t.Add(500 * time.Millisecond)
	require.Equal(t, 500*time.Millisecond, f.Wait(a))
	c.t = c.t.Add(500 * time.Millisecond)
	require.Zero(t, f.Wait(a), "a failure earned back")
	require.True(t, f.Fail(a))
	require.Equal(t, time.Second, f.Wait(a))
}

func TestFailuresGlobal(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_000_000, 0)}
	f := throttle.New(throttle.Config{PerAddr: 1, PerAddrBurst: 5, Global: 10, GlobalBurst: 20, Now: c.now})
	// Four addresses, five failures each: none is over its own budget's
	// burst, together they use the global one up.
	for _, addr := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"} {
		for range 5 {
			f.Fail(addr)
		}
	}
	require.Equal(t, 100*time.Millisecond, f.Wait("198.51.100.7"), "a fresh address waits for the global budget")
	c.t = c.t.Add(100 * time.Millisecond)
	require.Zero(t, f.Wait("198.51.100.7"))
}

func TestFailuresForgetsAddressesBeyondTheBound(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_000_000, 0)}
	f := throttle.New(throttle.Config{PerAddr: rate.Every(time.Hour), PerAddrBurst: 1, Global: 1e6, GlobalBurst: 1e6, MaxAddrs: 2, Now: c.now})
	f.Fail("192.0.2.1")
	f.Fail("192.0.2.2")
	f.Fail("192.0.2.3") // one of the first two is forgotten to make room
	waiting := 0
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		if f.Wait(a) > 0 {
			waiting++
		}
	}
	require.Equal(t, 2, waiting, "at most MaxAddrs addresses are remembered")
	require.Positive(t, f.Wait("192.0.2.3"), "the newest is kept")
}

func TestClient(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1:4711":             "192.0.2.1",
		"[::ffff:192.0.2.1]:80":      "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:1":   "2001:db8:1:2::/64",
		"[fe80::1%eth0]:22":          "fe80::/64",
		"not an address":             "not an address",
		"@":                          "@",
	} {
		require.Equal(t, want, throttle.Client(in), in)
	}
}
