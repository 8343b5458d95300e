package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
	"github.com/robotlab/webhookd/delivery/signature"
	"github.com/robotlab/webhookd/internal/daemontest"
)

type apiErr struct {
	Error client.Error `json:"error"`
}

func TestAPIAuth(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token-of-exactly-32-bytes" // the shortest accepted
	require.Len(t, token, 32)
	d := start(t, "--admin-token", token)
	var e apiErr
	require.Equal(t, http.StatusUnauthorized, d.call(t, http.MethodGet, "/v1/subscriptions", "", "", &e), "missing token")
	require.Equal(t, client.CodeUnauthorized, e.Error.Code)
	require.Equal(t, http.StatusUnauthorized, d.call(t, http.MethodGet, "/v1/subscriptions", token[:31]+"X", "", &e), "wrong token")
	require.Equal(t, http.StatusUnauthorized, d.call(t, http.MethodGet, "/v1/subscriptions", token+"-longer", "", &e), "longer token")
	require.Equal(t, http.StatusOK, d.call(t, http.MethodGet, "/v1/subscriptions", token, "", nil), "right token")
	// Health endpoints need no token.
	require.Equal(t, http.StatusOK, d.call(t, http.MethodGet, "/healthz", "", "", nil))
	require.Equal(t, http.StatusOK, d.call(t, http.MethodGet, "/readyz", "", "", nil))
	require.NotContains(t, d.logs.String(), token)
}

// TestAPIRefusesInternalAddressesInURLs checks the guard at create and update
// time: a subscription URL whose host is a literal internal address, in any
// spelling, is refused; --allow-targets overrides; names that do not
// resolve pass (the guard checks the address dialled at every connection).
func TestAPIRefusesInternalAddressesInURLs(t *testing.T) {
	t.Parallel()
	d := start(t, "--allow-targets", "203.0.113.0/24") // replaces start's loopback
	var sub client.Subscription
	require.Equal(t, http.StatusCreated, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"https://hooks.example.com/x","events":["task.completed"]}`, &sub))
	create := func(host string) string { return `{"url":"http://` + host + `:8080/x","events":["task.completed"]}` }
	update := func(host string) string { return `{"url":"http://` + host + `:8080/y"}` }
	internal := []string{
		// Issue 7's nine that got through, then twelve common ones.
		"100.64.0.1", "100.100.100.200", "198.18.0.1", "192.0.0.1", "240.0.0.1", "255.255.255.255",
		"[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::1]", "[fec0::1]",
		"127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.169.254", "0.0.0.0",
		"[::1]", "[::]", "[::ffff:127.0.0.1]", "[::ffff:169.254.169.254]", "[fe80::1]", "[fd00:ec2::254]",
		// Other spellings of the same.
		"[0:0:0:0:0:ffff:a9fe:a9fe]", "[::FFFF:7F00:1]", "[fe80::1%25eth0]", "[64:ff9b:1:a9fe:a9:fe00::]",
		"[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "[::a9fe:a9fe]", "[ff02::1]",
	}
	legacy := []string{"2130706433", "0x7f000001", "0x7f.1", "0177.0.0.1", "127.1", "127.0.0.1.", "0xA9FEA9FE", "169.254.43518"}
	// Unicode spellings that IDNA mapping (which net/http applies before
	// dialling) turns into internal addresses: ideographic, full-width and
	// half-width ideographic full stops, full-width digits, and the same
	// percent-encoded.
	internal = append(internal, "127。0。0。1", "127．0．0．1", "169｡254｡169｡254",
		"１２７.0.0.1", "10%E3%80%820%E3%80%820%E3%80%821")
	for _, host := range append(internal, legacy...) {
		mention := "internal address"
		if slices.Contains(legacy, host) {
			mention = "non-standard spelling"
		}
		var e apiErr
		require.Equal(t, http.StatusBadRequest, d.call(t, "POST", "/v1/subscriptions", d.token, create(host), &e), host)
		require.Equal(t, client.CodeInvalid, e.Error.Code)
		require.Contains(t, e.Error.Message, mention, host)
		require.Equal(t, http.StatusBadRequest, d.call(t, "PATCH", "/v1/subscriptions/"+sub.ID, d.token, update(host), &e), "update to %s", host)
		require.Contains(t, e.Error.Message, mention, host)
	}
	for _, host := range []string{"203.0.113.5", "8.8.8.8", "[2606:4700:4700::1111]", "[64:ff9b::808:808]", "123.example.com", "api.v2"} {
		require.Equal(t, http.StatusCreated, d.call(t, "POST", "/v1/subscriptions", d.token, create(host), nil), host)
		require.Equal(t, http.StatusOK, d.call(t, "PATCH", "/v1/subscriptions/"+sub.ID, d.token, update(host), nil), host)
	}
}

// A name that resolves to an internal address is refused at create and at
// update with the same one-line hint as a literal one, naming the program
// and the restart; once allowed, the same URL is accepted.
func TestAPIRefusesANameResolvingInternally(t *testing.T) {
	t.Parallel()
	closed := start(t, "--allow-targets", "203.0.113.0/24") // replaces start's loopback
	var sub client.Subscription
	require.Equal(t, http.StatusCreated, closed.call(t, "POST", "/v1/subscriptions", closed.token, `{"url":"https://hooks.example.com/x","events":["task.completed"]}`, &sub))
	const hint = "deliveries to it are refused: restart webhookd with `--allow-targets 127.0.0.0/8` to allow it"
	var e apiErr
	require.Equal(t, http.StatusBadRequest, closed.call(t, "POST", "/v1/subscriptions", closed.token, `{"url":"http://localhost:9000/hooks","events":["task.completed"]}`, &e))
	require.Equal(t, "url: localhost resolves to 127.0.0.1, an internal address; "+hint, e.Error.Message)
	require.Equal(t, http.StatusBadRequest, closed.call(t, "PATCH", "/v1/subscriptions/"+sub.ID, closed.token, `{"url":"http://localhost:9000/hooks"}`, &e))
	require.Equal(t, "url: localhost resolves to 127.0.0.1, an internal address; "+hint, e.Error.Message)
	require.Equal(t, http.StatusBadRequest, closed.call(t, "POST", "/v1/subscriptions", closed.token, `{"url":"http://127.0.0.2:9000/hooks","events":["task.completed"]}`, &e))
	require.Equal(t, "url: 127.0.0.2 is an internal address; "+hint, e.Error.Message)
	require.Equal(t, http.StatusBadRequest, closed.call(t, "POST", "/v1/subscriptions", closed.token, `{"url":"http://10.1.2.3/x","events":["task.completed"]}`, &e))
	require.Contains(t, e.Error.Message, "restart webhookd with `--allow-targets 10.1.2.3/32`")

	open := start(t) // loopback allowed, as make run does
	require.Equal(t, http.StatusCreated, open.call(t, "POST", "/v1/subscriptions", open.token, `{"url":"http://localhost:9000/hooks","events":["task.completed"]}`, nil))
}

func TestAPIValidation(t *testing.T) {
	t.Parallel()
	d := start(t)
	valid := `{"url":"https://hooks.example.com/x","events":["task.completed"]}`
	var sub client.Subscription
	require.Equal(t, http.StatusCreated, d.call(t, http.MethodPost, "/v1/subscriptions", d.token, valid, &sub))
	tests := []struct {
		name, method, path, body string
		status                   int
		code, mentions           string
	}{
		{"relative url", "POST", "/v1/subscriptions", `{"url":"/x","events":["task.completed"]}`, 400, "invalid_request", "url"},
		{"ftp url", "POST", "/v1/subscriptions", `{"url":"ftp://h/x","events":["task.completed"]}`, 400, "invalid_request", "url"},
		{"url without host", "POST", "/v1/subscriptions", `{"url":"https:///x","events":["task.completed"]}`, 400, "invalid_request", "url"},
		{"internal literal ip", "POST", "/v1/subscriptions", `{"url":"http://169.254.169.254/latest","events":["task.completed"]}`, 400, "invalid_request", "internal"},
		{"private literal ip", "POST", "/v1/subscriptions", `{"url":"http://10.1.2.3/x","events":["task.completed"]}`, 400, "invalid_request", "url"},
		{"no events", "POST", "/v1/subscriptions", `{"url":"https://h.example/x","events":[]}`, 400, "invalid_request", "events"},
		{"unknown type", "POST", "/v1/subscriptions", `{"url":"https://h.example/x","events":["task.exploded"]}`, 400, "invalid_request", "catalog"},
		{"bad pattern", "POST", "/v1/subscriptions", `{"url":"https://h.example/x","events":["task.>.x"]}`, 400, "invalid_request", "events"},
		{"timeout too long", "POST", "/v1/subscriptions", `{"url":"https://h.example/x","events":["task.*"],"timeout":"10m"}`, 400, "invalid_request", "timeout"},
		{"timeout not a duration", "POST", "/v1/subscriptions", `{"url":"https://h.example/x","events":["task.*"],"timeout":"soon"}`, 400, "invalid_request", "timeout"},
		{"unknown field", "POST", "/v1/subscriptions", `{"url":"https://h.example/x","events":["task.*"],"secret":"mine"}`, 400, "invalid_request", "secret"},
		{"not json", "POST", "/v1/subscriptions", `url=x`, 400, "invalid_request", "body"},
		{"empty body", "POST", "/v1/subscriptions", ``, 400, "invalid_request", "empty"},
		{"unknown subscription", "GET", "/v1/subscriptions/nope", ``, 404, "not_found", "nope"},
		{"patch unknown", "PATCH", "/v1/subscriptions/nope", `{"description":"x"}`, 404, "not_found", "nope"},
		{"patch bad url", "PATCH", "/v1/subscriptions/" + sub.ID, `{"url":"nope"}`, 400, "invalid_request", "url"},
		{"patch unknown field", "PATCH", "/v1/subscriptions/" + sub.ID, `{"colour":"red"}`, 400, "invalid_request", "colour"},
		{"delete unknown", "DELETE", "/v1/subscriptions/nope", ``, 404, "not_found", "nope"},
		{"pause unknown", "POST", "/v1/subscriptions/nope/pause", ``, 404, "not_found", "nope"},
		{"unknown delivery", "GET", "/v1/deliveries/nope", ``, 404, "not_found", "nope"},
		{"redeliver unknown", "POST", "/v1/deliveries/nope/redeliver", ``, 404, "not_found", "nope"},
		{"bad status filter", "GET", "/v1/deliveries?status=lost", ``, 400, "invalid_request", "status"},
		{"bad limit", "GET", "/v1/deliveries?limit=0", ``, 400, "invalid_request", "limit"},
		{"bad since", "GET", "/v1/deliveries?since=yesterday", ``, 400, "invalid_request", "since"},
		{"bad cursor", "GET", "/v1/deliveries?cursor=!!", ``, 400, "invalid_request", "cursor"},
		{"unknown query", "GET", "/v1/deliveries?colour=red", ``, 400, "invalid_request", "colour"},
		{"replay without since", "POST", "/v1/deliveries/replay", `{"subscription":"` + sub.ID + `"}`, 400, "invalid_request", "since"},
		{"replay unknown sub", "POST", "/v1/deliveries/replay", `{"subscription":"nope","since":"2024-01-01T00:00:00Z"}`, 404, "not_found", "nope"},
		{"unknown replay", "GET", "/v1/replays/" + sub.ID, ``, 404, "not_found", "replica"},
		{"replay bad rate", "POST", "/v1/deliveries/replay", `{"subscription":"` + sub.ID + `","since":"2024-01-01T00:00:00Z","rate":5000}`, 400, "invalid_request", "rate"},
		{"publish unknown type", "POST", "/v1/events", `{"event":"task.exploded","data":{}}`, 400, "invalid_request", "event"},
		{"publish array data", "POST", "/v1/events", `{"event":"task.completed","data":[1]}`, 400, "invalid_request", "data"},
		{"publish too large", "POST", "/v1/events", `{"event":"task.completed","data":{"x":"` + strings.Repeat("a", 2<<20) + `"}}`, 413, "payload_too_large", "bytes"},
		{"unknown route", "GET", "/v1/nothing", ``, 404, "not_found", "route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e apiErr
			require.Equal(t, tt.status, d.call(t, tt.method, tt.path, d.token, tt.body, &e))
			require.Equal(t, tt.code, e.Error.Code)
			require.Contains(t, e.Error.Message, tt.mentions)
		})
	}
	// Nothing invalid was stored.
	var list client.List[client.Subscription]
	require.Equal(t, http.StatusOK, d.call(t, http.MethodGet, "/v1/subscriptions", d.token, "", &list))
	require.Len(t, list.Items, 1)
}

func TestAPIRedeliverConflictsWhileQueued(t *testing.T) {
	t.Parallel()
	d := start(t, "--retry-backoff", "1h") // the first failure waits an hour
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }))
	t.Cleanup(rcv.Close)
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.failed"]}`, &sub))
	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"task.failed","data":{},"id":"e-q"}`, nil))
	var list client.List[client.Delivery]
	waitFor(t, func() bool {
		d.call(t, "GET", "/v1/deliveries?status=retrying", d.token, "", &list)
		return len(list.Items) == 1
	})
	var e apiErr
	require.Equal(t, http.StatusConflict, d.call(t, "POST", "/v1/deliveries/"+list.Items[0].ID+"/redeliver", d.token, "", &e))
	require.Equal(t, client.CodeConflict, e.Error.Code)

	var st client.Status
	waitFor(t, func() bool { // counters move just after the record is written
		require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/status", d.token, "", &st))
		return st.Counters["attempts"] == 1
	})
	require.EqualValues(t, 1, st.Counters["routed"])
	require.Len(t, st.Replicas, 1)
	require.Equal(t, st.Replica, st.Replicas[0])
	for _, c := range st.Consumers {
		if c.Name == "workers" {
			require.Equal(t, 1, c.InFlight, "the job waiting an hour for its retry is in flight")
		}
	}
}

// received is one request a test receiver got.
type received = daemontest.Request

// receiver answers 200 to every request and hands each to the channel.
func receiver(t *testing.T) (*httptest.Server, chan received) {
	t.Helper()
	srv, ch, _ := daemontest.Receiver(t, http.StatusOK, "")
	return srv, ch
}

func next(t *testing.T, ch chan received) received {
	t.Helper()
	return daemontest.Next(t, ch)
}

// hmacHex is the seed's recipe, written out: hex HMAC-SHA256 of the body
// keyed with the secret string.
func hmacHex(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func verifies(t *testing.T, secret string, r received) bool {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	return wh.Verify(r.Body, r.Header) == nil
}

func TestAPISecretRotationAndSecrecy(t *testing.T) {
	t.Parallel()
	const grace = 2 * time.Second
	d := start(t, "--secret-grace", grace.String())
	rcv, got := receiver(t)
	var created, rotated, view client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["alert.triggered"]}`, &created))
	require.NotEmpty(t, created.Secret)

	// list and get never show a secret.
	var list client.List[client.Subscription]
	require.Equal(t, 200, d.call(t, "GET", "/v1/subscriptions", d.token, "", &list))
	require.Empty(t, list.Items[0].Secret)
	require.Equal(t, 200, d.call(t, "GET", "/v1/subscriptions/"+created.ID, d.token, "", &view))
	require.Empty(t, view.Secret)

	rotatedAt := time.Now()
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+created.ID+"/rotate-secret", d.token, "", &rotated))
	require.NotEmpty(t, rotated.Secret)
	require.NotEqual(t, created.Secret, rotated.Secret)

	// During the grace period a receiver holding either secret verifies,
	// in both schemes.
	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"alert.triggered","data":{"n":1}}`, nil))
	r := next(t, got)
	require.True(t, verifies(t, created.Secret, r), "old secret verifies during the grace period")
	require.True(t, verifies(t, rotated.Secret, r), "new secret verifies")
	require.Len(t, strings.Fields(r.Header.Get("webhook-signature")), 2)
	seed := strings.Split(r.Header.Get("X-Webhook-Signature"), ",")
	require.Equal(t, []string{hmacHex(rotated.Secret, r.Body), hmacHex(created.Secret, r.Body)}, seed,
		"X-Webhook-Signature: one lowercase hex HMAC per live secret, newest first")
	require.True(t, signature.Verify(created.Secret, r.Body, r.Header.Get("X-Webhook-Signature")), "a receiver still on the old secret")
	require.True(t, signature.Verify(rotated.Secret, r.Body, r.Header.Get("X-Webhook-Signature")), "a receiver on the new secret")

	// After it, only the new one.
	time.Sleep(time.Until(rotatedAt.Add(grace + 500*time.Millisecond))) // wait out the grace period itself
	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"alert.triggered","data":{"n":2}}`, nil))
	r = next(t, got)
	require.False(t, verifies(t, created.Secret, r), "old secret no longer verifies")
	require.True(t, verifies(t, rotated.Secret, r))
	require.Len(t, strings.Fields(r.Header.Get("webhook-signature")), 1)
	require.Equal(t, hmacHex(rotated.Secret, r.Body), r.Header.Get("X-Webhook-Signature"), "outside a grace period exactly one value, as the seed has it")
	require.False(t, signature.Verify(created.Secret, r.Body, r.Header.Get("X-Webhook-Signature")))

	logs := d.logs.String()
	require.NotContains(t, logs, created.Secret)
	require.NotContains(t, logs, rotated.Secret)
	require.NotContains(t, logs, strings.TrimPrefix(rotated.Secret, "whsec_"))
}

func TestAPIPauseKeepsAndResumeSends(t *testing.T) {
	t.Parallel()
	d := start(t)
	rcv, got := receiver(t)
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["robot.>"]}`, &sub))
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+sub.ID+"/pause", d.token, "", nil))
	for _, id := range []string{"p1", "p2", "p3"} {
		require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"robot.connected","data":{},"id":"`+id+`"}`, nil))
	}
	var list client.List[client.Delivery]
	waitFor(t, func() bool {
		d.call(t, "GET", "/v1/deliveries?status=paused&subscription="+sub.ID, d.token, "", &list)
		return len(list.Items) == 3
	})
	require.Empty(t, got, "nothing sent while paused")
	for _, dl := range list.Items {
		require.Empty(t, dl.Attempts, "no attempt counted while paused")
	}

	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+sub.ID+"/resume", d.token, "", nil))
	var order []string
	for range 3 {
		r := next(t, got)
		require.Equal(t, "1", r.Header.Get("X-Webhook-Attempt"))
		order = append(order, r.Header.Get("X-Webhook-Delivery"))
	}
	// Oldest first: the list above was newest first.
	require.Equal(t, []string{list.Items[2].ID, list.Items[1].ID, list.Items[0].ID}, order)
}

func TestAPIDeleteCancelsQueuedJobs(t *testing.T) {
	t.Parallel()
	d := start(t)
	rcv, got := receiver(t)
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.created"]}`, &sub))
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/"+sub.ID+"/pause", d.token, "", nil))
	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"task.created","data":{},"id":"c1"}`, nil))
	var list client.List[client.Delivery]
	waitFor(t, func() bool {
		d.call(t, "GET", "/v1/deliveries?event=c1", d.token, "", &list)
		return len(list.Items) == 1 && list.Items[0].Status == "paused"
	})
	require.Equal(t, 204, d.call(t, "DELETE", "/v1/subscriptions/"+sub.ID, d.token, "", nil))
	var one client.Delivery
	require.Equal(t, 200, d.call(t, "GET", "/v1/deliveries/"+list.Items[0].ID, d.token, "", &one))
	require.Equal(t, "cancelled", one.Status, "held deliveries of a deleted subscription are cancelled")
	var e apiErr
	require.Equal(t, http.StatusConflict, d.call(t, "POST", "/v1/deliveries/"+list.Items[0].ID+"/redeliver", d.token, "", &e),
		"a deleted subscription's delivery cannot be sent")
	require.Empty(t, got)
}

// waitFor polls cond: API state has no event to await.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAPIReplaySendsFailedDeliveriesAgain(t *testing.T) {
	t.Parallel()
	d := start(t, "--retry-backoff", "") // one attempt each
	var healthy atomic.Bool
	got := make(chan http.Header, 16)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got <- r.Header.Clone()
	}))
	t.Cleanup(rcv.Close)
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.failed"]}`, &sub))
	since := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	for _, id := range []string{"r1", "r2"} {
		require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"task.failed","data":{},"id":"`+id+`"}`, nil))
	}
	var list client.List[client.Delivery]
	waitFor(t, func() bool {
		d.call(t, "GET", "/v1/deliveries?status=failed", d.token, "", &list)
		return len(list.Items) == 2
	})
	healthy.Store(true)
	var res client.Replay
	require.Equal(t, 202, d.call(t, "POST", "/v1/deliveries/replay", d.token,
		`{"subscription":"`+sub.ID+`","since":"`+since+`","rate":100}`, &res))
	require.Equal(t, 2, res.Planned)
	require.Equal(t, sub.ID, res.Subscription)
	waitFor(t, func() bool {
		require.Equal(t, 200, d.call(t, "GET", "/v1/replays/"+res.ID, d.token, "", &res))
		return res.Done
	})
	require.Equal(t, 2, res.Sent)
	require.Empty(t, res.Error)
	seen := map[string]bool{}
	for range 2 {
		select {
		case h := <-got:
			require.Equal(t, "2", h.Get("X-Webhook-Attempt"))
			seen[h.Get("X-Webhook-Delivery")] = true
		case <-time.After(15 * time.Second):
			t.Fatal("replayed delivery did not arrive")
		}
	}
	require.True(t, seen[list.Items[0].ID] && seen[list.Items[1].ID])
}

// A receiver failing in a row opens its subscription's circuit breaker: the
// state, the failure count and the last status show in the subscription and
// in /v1/status, as the answering replica sees them.
func TestAPIShowsTheBreaker(t *testing.T) {
	t.Parallel()
	d := start(t, "--breaker-failures", "2", "--breaker-cooldown", "1h", "--retry-backoff", "50ms,50ms,50ms")
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	t.Cleanup(rcv.Close)
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"`+rcv.URL+`","events":["task.failed"]}`, &sub))
	require.NotNil(t, sub.Health)
	require.Equal(t, "closed", sub.Health.Breaker)
	require.Equal(t, 202, d.call(t, "POST", "/v1/events", d.token, `{"event":"task.failed","data":{},"id":"e-b"}`, nil))

	waitFor(t, func() bool {
		require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/subscriptions/"+sub.ID, d.token, "", &sub))
		// Opening also persists when the failures began, a moment later.
		return sub.Health.Breaker == "open" && !sub.FailingSince.IsZero()
	})
	require.Equal(t, 2, sub.Health.ConsecutiveFailures)
	require.Equal(t, http.StatusBadGateway, sub.Health.LastStatusCode)
	require.False(t, sub.Health.OpenUntil.IsZero())

	var st client.Status
	require.Equal(t, http.StatusOK, d.call(t, "GET", "/v1/status", d.token, "", &st))
	require.Len(t, st.Endpoints, 1)
	require.Equal(t, sub.ID, st.Endpoints[0].SubscriptionID)
	require.Equal(t, "open", st.Endpoints[0].Breaker)
	require.Contains(t, d.logs.String(), "circuit breaker open")
}
