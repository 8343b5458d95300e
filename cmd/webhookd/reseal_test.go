package main

import (
	"bytes"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/jetstream"
)

// plaintextIn returns the files under dir whose bytes hold any of needles,
// with how many times.
func plaintextIn(t *testing.T, dir string, needles ...string) map[string]int {
	t.Helper()
	found := map[string]int{}
	require.NoError(t, filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if c := bytes.Count(b, []byte(n)); c > 0 {
				found[strings.TrimPrefix(path, dir)] += c
			}
		}
		return nil
	}))
	return found
}

// TestEnablingTheSecretKeyResealsTheBucketFiles runs webhookd without a
// secret key, creates, rotates and deletes subscriptions, then restarts it
// with --secret-key-file: afterwards no file of the NATS store holds a
// secret in plaintext (the precondition shows that the bucket's block file
// did, the deleted subscription's included), the subscriptions are all
// there and sign with their secrets, the deleted one stays deleted, and the
// next start does not reseal again.
func TestEnablingTheSecretKeyResealsTheBucketFiles(t *testing.T) {
	t.Parallel()
	d := start(t)
	rcv, got := receiver(t)
	create := func() client.Subscription {
		var sub client.Subscription
		require.Equal(t, http.StatusCreated, d.call(t, "POST", "/v1/subscriptions", d.token,
			`{"url":"`+rcv.URL+`","events":["task.completed"]}`, &sub))
		return sub
	}
	kept, rotated, deleted := create(), create(), create()
	var after client.Subscription
	require.Equal(t, http.StatusOK, d.call(t, "POST", "/v1/subscriptions/"+rotated.ID+"/rotate-secret", d.token, `{"grace":"0s"}`, &after))
	require.Equal(t, http.StatusNoContent, d.call(t, "DELETE", "/v1/subscriptions/"+deleted.ID, d.token, "", nil))
	require.NoError(t, d.stop())

	store := jetstream.StoreDir(d.dataDir)
	secrets := []string{kept.Secret, rotated.Secret, after.Secret, deleted.Secret}
	bare := make([]string, len(secrets)) // as stored, or in any other form
	for i, s := range secrets {
		bare[i] = strings.TrimPrefix(s, "whsec_")
	}
	before := plaintextIn(t, store, bare...)
	t.Logf("plaintext secrets before the key: %v", before)
	require.NotEmpty(t, before, "precondition: the bucket's files hold the secrets")
	require.NotEmpty(t, plaintextIn(t, store, bare[3]), "precondition: the deleted subscription's secret too")

	keyFile, _ := writeKey(t)
	// Restarted on the same data dir (its token too: start reads its own).
	d2 := start(t, "--data-dir", d.dataDir, "--secret-key-file", keyFile)
	require.Contains(t, d2.logs.String(), "subscription bucket resealed: every secret encrypted")
	var list client.List[client.Subscription]
	require.Equal(t, http.StatusOK, d2.call(t, "GET", "/v1/subscriptions", d.token, "", &list))
	require.Len(t, list.Items, 2, "the deleted subscription stays deleted")
	require.Equal(t, http.StatusAccepted, d2.call(t, "POST", "/v1/events", d.token, `{"event":"task.completed","data":{}}`, nil))
	for range 2 {
		r := next(t, got)
		secret := kept.Secret
		if r.Header.Get("X-Webhook-ID") == rotated.ID {
			secret = after.Secret
		}
		require.True(t, signature.Verify(secret, r.Body, r.Header.Get("X-Webhook-Signature")), "secrets survive the reseal")
	}
	require.NoError(t, d2.stop())
	require.Empty(t, plaintextIn(t, store, append(bare, "whsec_")...), "no plaintext secret left in the NATS store's files")

	d3 := start(t, "--data-dir", d.dataDir, "--secret-key-file", keyFile)
	require.NotContains(t, d3.logs.String(), "subscription bucket resealed", "once per key")
	require.Equal(t, http.StatusOK, d3.call(t, "GET", "/v1/subscriptions", d.token, "", &list))
	require.Len(t, list.Items, 2)
}
