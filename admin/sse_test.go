package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The event stream's framing: comments and named events of one data line,
// each flushed; data with a line break is refused rather than sent split.
func TestSSEWriterFramesEvents(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		sse := newSSE(w, time.Second)
		require.NoError(t, sse.comment("keep-alive"))
		require.NoError(t, sse.event("delivery", []byte(`{"n":1}`)))
		require.Error(t, sse.event("delivery", []byte("two\nlines")), "data must be one line")
	}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	require.Equal(t, ": keep-alive\n\nevent: delivery\ndata: {\"n\":1}\n\n", string(body))
}
