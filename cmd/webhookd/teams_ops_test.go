package main

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// TestTeamCannotSubscribeToWebhookdsOwnEvents: webhookd's own events
// (webhook.delivery_exhausted, webhook.subscription_disabled) name the
// subscription, delivery, event and receiver host they are about, whatever
// its team. A team token may not create or change a subscription whose
// events take them, by name or by pattern; the operator may.
func TestTeamCannotSubscribeToWebhookdsOwnEvents(t *testing.T) {
	t.Parallel()
	const opToken = "3f9a1c7e5b2d8046a1c3e5f7092b4d6e"
	d := start(t, "--admin-token", opToken)
	d.token = opToken
	tok := createToken(t, d, "watcher", "team-w")
	url := "https://receiver.example.com/hook"

	for _, events := range []string{`["webhook.delivery_exhausted"]`, `["task.completed","webhook.subscription_disabled"]`, `["webhook.*"]`, `["webhook.>"]`, `[">"]`, `["*.delivery_exhausted"]`} {
		status, body := d.raw(t, "POST", "/v1/subscriptions", tok, fmt.Sprintf(`{"url":%q,"events":%s}`, url, events))
		require.Equal(t, http.StatusBadRequest, status, "%s: %s", events, body)
		require.Contains(t, body, "webhookd's own events", events)
	}
	var sub client.Subscription
	require.Equal(t, http.StatusCreated, d.call(t, "POST", "/v1/subscriptions", tok, fmt.Sprintf(`{"url":%q,"events":["task.*","alert.>"]}`, url), &sub))
	status, body := d.raw(t, "PATCH", "/v1/subscriptions/"+sub.ID, tok, `{"events":["task.*","webhook.delivery_exhausted"]}`)
	require.Equal(t, http.StatusBadRequest, status, body)
	require.Contains(t, body, "webhookd's own events")
	require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/subscriptions/"+sub.ID, tok, "", &sub))
	require.Equal(t, []string{"task.*", "alert.>"}, sub.Events, "unchanged")

	require.Equal(t, http.StatusCreated, d.call(t, "POST", "/v1/subscriptions", opToken,
		fmt.Sprintf(`{"url":%q,"events":["webhook.delivery_exhausted",">"]}`, url), nil), "the operator may")
}
