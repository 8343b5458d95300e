package admin

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// sseWriter writes a Server-Sent Events stream (text/event-stream): named
// events whose data is one line, and comments as keep-alives. Each write is
// flushed at once and must finish within writeTimeout, so a client that
// stops reading is cut off instead of holding the handler. Not safe for
// concurrent use.
type sseWriter struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	writeTimeout time.Duration
}

// newSSE answers 200 with the stream's headers and returns its writer. The
// ResponseWriter must support flushing (every net/http one does).
func newSSE(w http.ResponseWriter, writeTimeout time.Duration) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold events back
	w.WriteHeader(http.StatusOK)
	return &sseWriter{w: w, rc: http.NewResponseController(w), writeTimeout: writeTimeout}
}

// event writes one event named name with data, which must hold no line
// break (compact JSON holds none).
func (s *sseWriter) event(name string, data []byte) error {
	if bytes.ContainsAny(data, "\r\n") {
		return fmt.Errorf("sse: event %s: data holds a line break", name)
	}
	var b bytes.Buffer
	b.Grow(len(name) + len(data) + 16)
	b.WriteString("event: ")
	b.WriteString(name)
	b.WriteString("\ndata: ")
	b.Write(data)
	b.WriteString("\n\n")
	return s.write(b.Bytes())
}

// comment writes a comment line, which clients ignore: a keep-alive.
func (s *sseWriter) comment(text string) error {
	return s.write([]byte(": " + text + "\n\n"))
}

func (s *sseWriter) write(p []byte) error {
	if s.writeTimeout > 0 {
		err := s.rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		if err != nil && !errors.Is(err, http.ErrNotSupported) {
			return fmt.Errorf("sse: set write deadline: %w", err)
		}
	}
	if _, err := s.w.Write(p); err != nil {
		return fmt.Errorf("sse: write: %w", err)
	}
	if err := s.rc.Flush(); err != nil {
		return fmt.Errorf("sse: flush: %w", err)
	}
	return nil
}
