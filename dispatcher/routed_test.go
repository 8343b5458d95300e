package dispatcher

import (
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
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
