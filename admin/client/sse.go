package client

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// sseEvent is one event of a text/event-stream: its name ("message" when
// the server gave none) and its data lines joined with "\n".
type sseEvent struct {
	Name string
	Data []byte
}

// maxSSELine bounds one line of an event stream: an event's data is one
// line of JSON, a listener's request body base64 within it.
const maxSSELine = 64 << 20

// readSSE reads the Server-Sent Events of r (the text/event-stream format
// of the HTML standard: "event:" and "data:" fields, comments starting
// with ":", an empty line ending each event) and calls fn with each, until
// r ends (nil), fn fails (its error) or a line is longer than maxSSELine.
// Fields other than event and data ("id", "retry") are ignored.
func readSSE(r io.Reader, fn func(sseEvent) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxSSELine)
	var ev sseEvent
	var data [][]byte
	for sc.Scan() {
		line := sc.Bytes() // without its "\n" or "\r\n"
		if len(line) == 0 {
			if data != nil {
				ev.Data = bytes.Join(data, []byte("\n"))
				if ev.Name == "" {
					ev.Name = "message"
				}
				if err := fn(ev); err != nil {
					return err
				}
			}
			ev, data = sseEvent{}, nil
			continue
		}
		// A comment (": keep-alive") has an empty field name: ignored.
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			ev.Name = string(value)
		case "data":
			data = append(data, bytes.Clone(value))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read event stream: %w", err)
	}
	return nil
}
