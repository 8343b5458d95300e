package dispatcher

import (
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/delivery"
	"github.com/robotlab/webhookd/subscriptions"
	"github.com/robotlab/webhookd/subscriptions/expr"
)

// The routed floor moves over the events known routed, from the router's
// ack floor, and stops at the first one not known: a gap holds it until
// the ack floor passes it.
func TestRoutedFloorStopsAtAGap(t *testing.T) {
	l := newRoutedLog(nil, zerolog.Nop())
	require.Equal(t, uint64(0), l.floor(0))
	l.add(1)
	l.add(2)
	require.Empty(t, l.known, "events right above the floor move it at once: nothing kept")
	l.add(4) // 3 not routed yet (or its message was lost)
	require.Equal(t, uint64(2), l.floor(0))
	require.Equal(t, uint64(2), l.floor(1), "an older ack floor changes nothing")
	require.Equal(t, uint64(4), l.floor(3), "the ack floor closes the gap")
	l.add(3) // a redelivered event routed again
	require.Equal(t, uint64(4), l.floor(0))
}

// Routed messages round-trip; a malformed one is an error, never a panic.
func TestDecodeRouted(t *testing.T) {
	l := newRoutedLog(nil, zerolog.Nop())
	for _, s := range []uint64{7, 3, 1 << 40} {
		l.pending = append(l.pending, s)
	}
	seqs, id, err := decodeRouted(encodeRouted(l.replica, l.pending), len(l.replica))
	require.NoError(t, err)
	require.Equal(t, l.replica, id)
	require.Equal(t, []uint64{3, 7, 1 << 40}, seqs)
	for _, bad := range [][]byte{nil, []byte("short"), append([]byte(l.replica), 0x80)} {
		_, _, err := decodeRouted(bad, len(l.replica))
		require.Error(t, err)
	}
}

// An event's variables are decoded once for a subscription's filter and
// its ordering key alike.
func TestEventVarsDecodedOnceForFilterAndOrderingKey(t *testing.T) {
	exprs, err := expr.NewCompiler()
	require.NoError(t, err)
	d := &Dispatcher{deps: Deps{Exprs: exprs, Observer: nopObserver{}}}
	sub := subscriptions.Subscription{ID: "s", Filter: `data.level > 1`, OrderingKey: "data.robot_id"}
	v := &eventVars{ev: delivery.Event{ID: "e", Type: "task.completed", Timestamp: time.Now(), Data: []byte(`{"robot_id":"R1","level":3}`)}}
	require.Len(t, d.filtered(v, []subscriptions.Subscription{sub}, zerolog.Nop()), 1)
	require.Equal(t, 1, v.decoded, "the filter decoded the event's shared variables")
	key, ok := d.orderingKey(sub, v, zerolog.Nop())
	require.True(t, ok)
	require.Equal(t, "R1", key)
	require.Equal(t, 1, v.decoded, "the filter and the key share one decoding")
}
