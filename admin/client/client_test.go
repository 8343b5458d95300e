package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

func TestErrorMatchesByCode(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("get subscription: %w", &client.Error{Status: 404, Code: client.CodeNotFound, Message: `subscription "x" not found`})
	require.ErrorIs(t, err, client.ErrNotFound)
	require.NotErrorIs(t, err, &client.Error{Code: client.CodeConflict})
	var apiErr *client.Error
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, 404, apiErr.Status)
}

func TestNewRejectsBadServer(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://x", "http://"} {
		_, err := client.New(bad, "t")
		require.Error(t, err, bad)
	}
	_, err := client.New("http://127.0.0.1:8080/", "t")
	require.NoError(t, err)
}

func TestSubscriptionState(t *testing.T) {
	t.Parallel()
	require.Equal(t, "active", client.Subscription{Active: true}.State())
	require.Equal(t, "paused", client.Subscription{}.State())
	require.Equal(t, "disabled", client.Subscription{DisabledReason: "failing"}.State())

	// The health fields are omitted while empty; max_in_flight is always shown.
	b, err := json.Marshal(client.Subscription{ID: "x"})
	require.NoError(t, err)
	require.Contains(t, string(b), `"max_in_flight":0`)
	for _, k := range []string{"disabled_reason", "disabled_at", "failing_since", "secret"} {
		require.NotContains(t, string(b), k)
	}
}
