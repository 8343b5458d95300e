package main

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/internal/daemontest"
)

// loggedEvents returns the message log's page for query.
func loggedEvents(t *testing.T, d *daemon, query string) []client.Event {
	t.Helper()
	var page client.List[client.Event]
	require.Equal(t, 200, d.call(t, "GET", "/v1/events?"+query, d.token, "", &page))
	return page.Items
}

// loggedEvent returns GET /v1/events/{id}, which must answer 200.
func loggedEvent(t *testing.T, d *daemon, id string) client.EventDetail {
	t.Helper()
	var ev client.EventDetail
	require.Equal(t, 200, d.call(t, "GET", "/v1/events/"+url.PathEscape(id), d.token, "", &ev))
	return ev
}

// oneDelivery waits for the delivery of an event to have status and
// returns it, as GET /v1/deliveries/{id} shows it.
func oneDelivery(t *testing.T, d *daemon, eventID, status string) client.Delivery {
	t.Helper()
	var page client.List[client.Delivery]
	waitFor(t, func() bool {
		require.Equal(t, 200, d.call(t, "GET", "/v1/deliveries?event="+url.QueryEscape(eventID), d.token, "", &page))
		return len(page.Items) == 1 && page.Items[0].Status == status
	})
	var one client.Delivery
	require.Equal(t, 200, d.call(t, "GET", "/v1/deliveries/"+page.Items[0].ID, d.token, "", &one))
	return one
}

func TestMessageLogKeepsPayloadsAndEventsWithoutSubscriber(t *testing.T) {
	t.Parallel()
	d := start(t)
	rcv, got := receiver(t)
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.completed"]}`, nil))

	// A delivery that succeeded at once shows the very body it POSTed.
	require.NoError(t, publishAsRobot(t, d.nats, "task.completed", `{"task_id":"T1"}`, "evt-ok"))
	sent := next(t, got)
	ok := oneDelivery(t, d, "evt-ok", "succeeded")
	require.JSONEq(t, string(sent.Body), string(ok.Payload), ok.PayloadNote)
	require.Empty(t, ok.PayloadNote)

	// So does one still retrying, which has no kept job.
	failing, fails, _ := daemontest.Receiver(t, 500, "")
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token,
		`{"url":"`+failing.URL+`","events":["robot.connected"],"retry_policy":"1h"}`, nil))
	require.NoError(t, publishAsRobot(t, d.nats, "robot.connected", `{"robot_id":"R7"}`, "evt-retrying"))
	tried := next(t, fails)
	retrying := oneDelivery(t, d, "evt-retrying", "retrying")
	require.JSONEq(t, string(tried.Body), string(retrying.Payload), retrying.PayloadNote)

	// Events with no subscriber are listed, with and without an id.
	var pub client.Published
	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"alert.triggered","data":{"level":"high"}}`, &pub))
	require.NoError(t, publishAsRobot(t, d.nats, "alert.triggered", `{"level":"low"}`, "robot/alert-1"))
	var alerts []client.Event
	waitFor(t, func() bool {
		alerts = loggedEvents(t, d, "type=alert.triggered")
		return len(alerts) == 2 && alerts[1].Status == client.EventNoSubscriber
	})
	require.Equal(t, []string{pub.ID, "robot/alert-1"}, []string{alerts[0].ID, alerts[1].ID})
	require.Equal(t, client.EventNoSubscriber, alerts[0].Status)
	require.Equal(t, len(`{"level":"high"}`), alerts[0].Size)
	for _, id := range []string{pub.ID, "robot/alert-1"} { // a derived id, and one found by a scan
		ev := loggedEvent(t, d, id)
		require.Equal(t, client.EventNoSubscriber, ev.Status, id)
		require.Contains(t, ev.Note, "no subscriber", id)
		require.Empty(t, ev.Deliveries, id)
		var env struct {
			ID, Event string
			Data      map[string]string
		}
		require.NoError(t, json.Unmarshal(ev.Payload, &env), id)
		require.Equal(t, id, env.ID)
		require.Equal(t, "alert.triggered", env.Event)
		require.NotEmpty(t, env.Data["level"], id)
	}

	// An event with a subscriber: its payload and its delivery.
	ev := loggedEvent(t, d, "evt-ok")
	require.Equal(t, client.EventRouted, ev.Status)
	require.Equal(t, 1, ev.DeliveryCount)
	require.JSONEq(t, string(sent.Body), string(ev.Payload))
	require.Len(t, ev.Deliveries, 1)
	require.Equal(t, ok.ID, ev.Deliveries[0].ID)

	// A rejected event is listed too, with its reason and its data.
	require.NoError(t, publishAsRobot(t, d.nats, "no.such.type", `not json`, ""))
	waitFor(t, func() bool {
		evs := loggedEvents(t, d, "type=no.such.type")
		return len(evs) == 1 && evs[0].Status == client.EventRejected
	})
	bad := loggedEvents(t, d, "type=no.such.type")[0]
	require.Contains(t, bad.Reason, "unknown event type")
	badDetail := loggedEvent(t, d, bad.ID)
	require.Equal(t, "not json", badDetail.RawData)
	require.Contains(t, badDetail.Note, "rejected: unknown event type")

	// Everything, oldest first; pages continue after a sequence.
	all := loggedEvents(t, d, "")
	require.Len(t, all, 5)
	for i := 1; i < len(all); i++ {
		require.Less(t, all[i-1].Seq, all[i].Seq)
	}
	var page client.List[client.Event]
	require.Equal(t, 200, d.call(t, "GET", "/v1/events?limit=2", d.token, "", &page))
	require.Len(t, page.Items, 2)
	require.Equal(t, "2", page.NextCursor)
	rest := loggedEvents(t, d, "after="+page.NextCursor)
	require.Equal(t, all[2:], rest)

	// Bad input: one clear error, nothing read.
	for query, want := range map[string]string{
		"type=task.*": "wildcards", "after=x": "after:", "limit=0": "limit:", "limit=1001": "limit:",
		"since=yesterday": "since:", "order=newest": "unknown query parameter",
	} {
		var e struct{ Error client.Error }
		require.Equal(t, 400, d.call(t, "GET", "/v1/events?"+query, d.token, "", &e), query)
		require.Contains(t, e.Error.Message, want, query)
	}
	var e struct{ Error client.Error }
	require.Equal(t, 404, d.call(t, "GET", "/v1/events/no-such-event", d.token, "", &e))
	require.Contains(t, e.Error.Message, `event "no-such-event" not found`)
	require.Equal(t, 401, d.call(t, "GET", "/v1/events", "", "", nil))
}

func TestMessageLogSaysWhenAPayloadAgedOut(t *testing.T) {
	t.Parallel()
	d := start(t, "--event-retention", "0s") // purged as soon as routed
	rcv, got := receiver(t)
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.completed"]}`, nil))
	require.NoError(t, publishAsRobot(t, d.nats, "task.completed", `{"task_id":"T2"}`, "evt-gone"))
	next(t, got)
	waitFor(t, func() bool { return eventsKept(t, d) == 0 })

	gone := oneDelivery(t, d, "evt-gone", "succeeded")
	require.Empty(t, gone.Payload)
	require.Equal(t, "payload no longer retained: older than --event-retention (0s)", gone.PayloadNote)
	ev := loggedEvent(t, d, "evt-gone")
	require.Empty(t, ev.Payload)
	require.Equal(t, gone.PayloadNote, ev.Note)
	require.Len(t, ev.Deliveries, 1)
	require.Empty(t, loggedEvents(t, d, ""))
}
