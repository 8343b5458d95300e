package subscriptions_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/jetstream/jstest"
	"github.com/robotlab/webhookd/subscriptions"
)

func TestValidateLabels(t *testing.T) {
	t.Parallel()
	ok := []map[string]string{
		nil, {}, {"owner": "team-a"}, {"owner": "Team_A.1", "env": "prod", "cost-centre": "42"},
		{strings.Repeat("k", 63): strings.Repeat("v", 63)},
	}
	for _, l := range ok {
		require.NoError(t, subscriptions.ValidateLabels(l), "%v", l)
	}
	many := map[string]string{}
	for i := range subscriptions.MaxLabels + 1 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	bad := map[string]map[string]string{
		"at most 16":                       many,
		`key ""`:                           {"": "x"},
		`key "Owner"`:                      {"Owner": "x"},
		`key "-x"`:                         {"-x": "x"},
		`key "a b"`:                        {"a b": "x"},
		"owner=\"\"":                       {"owner": ""},
		`owner="team a"`:                   {"owner": "team a"},
		`owner="tëam"`:                     {"owner": "tëam"},
		`owner="a\nb"`:                     {"owner": "a\nb"},
		"key \"" + strings.Repeat("k", 40): {strings.Repeat("k", 64): "v"},
		"value of 1 to 63":                 {"owner": strings.Repeat("v", 64)},
	}
	for want, l := range bad {
		err := subscriptions.ValidateLabels(l)
		require.ErrorIs(t, err, subscriptions.ErrInvalid, want)
		require.ErrorContains(t, err, want)
		require.NotContains(t, err.Error(), "\n")
	}
}

// TestLabelsAreStoredAndOldRecordsHaveNone: labels survive the bucket and
// the mirror, and a record written before labels existed (no "labels"
// field) still decodes, with none.
func TestLabelsAreStoredAndOldRecordsHaveNone(t *testing.T) {
	t.Parallel()
	ns := jstest.RunProvisioned(t)
	kv := bucket(t, ns.JS)
	ctx := context.Background()

	const oldID = "6f1c0000-0000-4000-8000-0000000000aa"
	old := `{"id":"` + oldID + `","url":"https://a.example/hook","events":["task.*"],"active":true,` +
		`"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z","secret":"whsec_b2xkIHNlY3JldCBvZiAzMiBieXRlcyBleGFjdGx5IQ=="}`
	_, err := kv.Put(ctx, oldID, []byte(old))
	require.NoError(t, err)

	r := startReplica(t, kv, filepath.Join(t.TempDir(), "a.db"))
	got, ok := r.store.Get(oldID)
	require.True(t, ok)
	require.Nil(t, got.Labels)
	require.Empty(t, got.Owner())

	sub, err := r.store.Create(ctx, subscriptions.Subscription{URL: "https://b.example", Events: []string{"task.*"},
		Labels: map[string]string{"owner": "team-a", "env": "prod"}})
	require.NoError(t, err)
	require.Contains(t, rawKV(t, kv, sub.ID), `"labels":{"env":"prod","owner":"team-a"}`)
	got, ok = r.store.Get(sub.ID)
	require.True(t, ok)
	require.Equal(t, "team-a", got.Owner())
	require.Equal(t, map[string]string{"owner": "team-a", "env": "prod"}, got.Labels)

	_, err = r.store.Create(ctx, subscriptions.Subscription{URL: "https://b.example", Events: []string{"task.*"},
		Labels: map[string]string{"owner": "no spaces"}})
	require.ErrorIs(t, err, subscriptions.ErrInvalid, "the store validates labels")

	// Labels are in the default JSON form (they are not secret).
	b, err := got.MarshalJSON()
	require.NoError(t, err)
	require.Contains(t, string(b), `"labels":{"env":"prod","owner":"team-a"}`)
}
