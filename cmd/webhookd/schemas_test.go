package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// robotSchema requires robot_id; lab.door is a type only its schema adds.
const (
	robotSchema = `{"type":"object","required":["task_id","robot_id"],
	  "properties":{"task_id":{"type":"string"},"robot_id":{"type":"string"}},
	  "examples":[{"task_id":"T9","robot_id":"R009"}]}`
	doorSchema = `{"type":"object","required":["door"],"properties":{"door":{"enum":["open","closed"]}}}`
)

func schemaDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
	}
	return dir
}

// TestEventSchemaRejectsTheEventNamingTheField runs webhookd with
// --event-schemas: an event whose data fails its schema is rejected with
// the failing field's JSON pointer, listed by status, counted, and never
// delivered, while the next valid one is; a schema's file adds its type to
// the catalog and GET /v1/event-types shows each schema and sample.
func TestEventSchemaRejectsTheEventNamingTheField(t *testing.T) {
	t.Parallel()
	dir := schemaDir(t, map[string]string{"task.completed.json": robotSchema, "lab.door.json": doorSchema})
	d := start(t, "--event-schemas", dir)
	rcv, got := receiver(t)
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token,
		`{"url":"`+rcv.URL+`","events":["task.completed","lab.door"]}`, nil), "lab.door is in the catalog through its schema")

	require.NoError(t, publishAsRobot(t, d.nats, "task.completed", `{"task_id":"T1"}`, "evt-no-robot"))
	require.NoError(t, publishAsRobot(t, d.nats, "lab.door", `{"door":"ajar"}`, "evt-ajar"))
	require.NoError(t, publishAsRobot(t, d.nats, "task.completed", `{"task_id":"T2","robot_id":"R002"}`, "evt-good"))
	require.Equal(t, "evt-good", eventID(t, next(t, got)), "the next valid event is delivered; the bad ones are not")
	require.NoError(t, publishAsRobot(t, d.nats, "lab.door", `{"door":"open"}`, "evt-open"))
	require.Equal(t, "evt-open", eventID(t, next(t, got)))

	reasons := map[string]string{}
	waitFor(t, func() bool { // the history index follows AUDIT
		var rejected client.List[client.Delivery]
		require.Equal(t, 200, d.call(t, "GET", "/v1/deliveries?status=rejected", d.token, "", &rejected))
		for _, dl := range rejected.Items {
			require.Equal(t, "rejected", dl.Status)
			reasons[dl.EventID] = dl.Reason
		}
		return len(reasons) >= 2
	})
	require.Equal(t, "data/robot_id: missing property", reasons["evt-no-robot"])
	require.True(t, strings.HasPrefix(reasons["evt-ajar"], "data/door: value must be one of"), reasons["evt-ajar"])
	require.Len(t, reasons, 2)
	waitFor(t, func() bool { // counted once the record is confirmed
		s := d.scrapeMetrics(t, "")
		return s.sum("webhookd_events_total", labels{"event_type": "task.completed", "result": "rejected"}) == 1 &&
			s.sum("webhookd_events_total", labels{"event_type": "lab.door", "result": "rejected"}) == 1
	})
	require.Empty(t, got, "nothing else was delivered")

	var types client.EventTypeList
	require.Equal(t, 200, d.call(t, "GET", "/v1/event-types", d.token, "", &types))
	byType := map[string]client.EventType{}
	for _, et := range types.Types {
		byType[et.Type] = et
	}
	require.Contains(t, types.Items, "task.completed", "items keeps the names, as before schemas")
	require.Len(t, types.Items, len(types.Types))
	require.JSONEq(t, robotSchema, string(byType["task.completed"].Schema))
	require.JSONEq(t, `{"task_id":"T9","robot_id":"R009"}`, string(byType["task.completed"].Sample), "the schema's example")
	require.JSONEq(t, doorSchema, string(byType["lab.door"].Schema))
	require.Nil(t, byType["lab.door"].Sample, "no example and no built-in sample")
	require.Nil(t, byType["task.failed"].Schema)
	require.NotNil(t, byType["task.failed"].Sample, "a built-in sample")
	require.Nil(t, byType["webhook.ping"].Sample, "webhookd's own events are not published")
}

// TestBadEventSchemaStopsStart: a schema that does not compile, or a file
// whose name is not an event type, stops webhookd with one line naming
// the file.
func TestBadEventSchemaStopsStart(t *testing.T) {
	t.Parallel()
	for name, files := range map[string]map[string]string{
		"does not compile": {"task.completed.json": robotSchema, "task.failed.json": `{"type":"objekt"}`},
		"not JSON":         {"task.failed.json": `{"type":`},
		"bad type name":    {"task failed.json": `{}`},
	} {
		t.Run(name, func(t *testing.T) {
			dir := schemaDir(t, files)
			// Should it start after all, the context ends it.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := run(ctx, []string{"--data-dir", t.TempDir(), "--event-schemas", dir,
				"--http-addr", freeAddr(t), "--nats-listen", freeAddr(t)}, noEnv, io.Discard)
			require.Error(t, err)
			for file := range files {
				if file != "task.completed.json" {
					require.Contains(t, err.Error(), filepath.Join(dir, file))
				}
			}
			require.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}
