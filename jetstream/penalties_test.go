package jetstream_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream"
)

// fakeClock is a clock that a sleep moves forward, or not (queued
// attempts from many connections at the same instant).
type fakeClock struct {
	now     time.Time
	slept   []time.Duration
	advance bool
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Sleep(d time.Duration) {
	c.slept = append(c.slept, d)
	if c.advance {
		c.now = c.now.Add(d)
	}
}

func TestPenaltiesSpaceAnAddressAfterAFailure(t *testing.T) {
	t.Parallel()
	const d = time.Second
	t.Run("sequential attempts wait one delay each", func(t *testing.T) {
		t.Parallel()
		c := &fakeClock{now: time.Unix(1000, 0), advance: true}
		p := jetstream.NewPenalties(d, c.Now, c.Sleep)
		require.True(t, p.Wait("10.0.0.1"))
		require.Empty(t, c.slept, "no failure yet: no wait")
		p.Fail("10.0.0.1")
		require.True(t, p.Wait("10.0.0.1"))
		p.Fail("10.0.0.1")
		require.True(t, p.Wait("10.0.0.1"))
		require.Equal(t, []time.Duration{d, d}, c.slept)
		require.True(t, p.Wait("10.0.0.2"))
		require.Len(t, c.slept, 2, "another address is not held back")
	})
	t.Run("attempts at once queue up to three delays, then are refused", func(t *testing.T) {
		t.Parallel()
		c := &fakeClock{now: time.Unix(1000, 0)}
		p := jetstream.NewPenalties(d, c.Now, c.Sleep)
		p.Fail("10.0.0.1")
		for range 3 {
			require.True(t, p.Wait("10.0.0.1"))
		}
		require.False(t, p.Wait("10.0.0.1"), "four delays ahead")
		require.Equal(t, []time.Duration{d, 2 * d, 3 * d}, c.slept)
		c.now = c.now.Add(10 * d)
		require.True(t, p.Wait("10.0.0.1"), "its turn comes back")
		require.Equal(t, time.Duration(0), c.slept[3])
	})
	t.Run("no delay", func(t *testing.T) {
		t.Parallel()
		c := &fakeClock{now: time.Unix(1000, 0)}
		p := jetstream.NewPenalties(0, c.Now, c.Sleep)
		p.Fail("10.0.0.1")
		for range 10 {
			require.True(t, p.Wait("10.0.0.1"))
		}
		require.Empty(t, c.slept)
	})
	t.Run("a full table makes newcomers share one slot", func(t *testing.T) {
		t.Parallel()
		c := &fakeClock{now: time.Unix(1000, 0)}
		p := jetstream.NewPenalties(d, c.Now, c.Sleep)
		for i := range jetstream.MaxPenalized {
			p.Fail(fmt.Sprintf("h%d", i))
		}
		p.Fail("new-1")
		require.True(t, p.Wait("new-2"), "new-2 shares new-1's slot")
		require.Equal(t, []time.Duration{d}, c.slept)
		c.now = c.now.Add(2 * time.Minute)
		p.Fail("new-3") // quiet addresses are forgotten
		require.True(t, p.Wait("new-4"))
		require.Len(t, c.slept, 1, "the table had room again: new-4 is unknown")
	})
}
