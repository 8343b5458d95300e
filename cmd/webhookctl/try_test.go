package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// subscriptions try prints the verdict, the body on one line and each
// error with its position; it exits 1 only when an expression does not
// compile, and takes a subscription's expressions by its id.
func TestCLITryPrintsErrorsAndExits1(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	out, errOut, code := d.ctl("subscriptions", "try", "--event", "alert.triggered", "--data", `{"severity":"info"}`,
		"--filter", `data.severity ==`, "--transform", `{"text": data.message}`)
	require.Equal(t, 1, code)
	require.Regexp(t, `(?m)^MATCHED\s+no$`, out)
	require.Regexp(t, `(?m)^BODY\s+null$`, out)
	require.Regexp(t, `(?m)^ERROR\s+filter: line 1, column 17: Syntax error: .* \(compile\)$`, out)
	require.Regexp(t, `(?m)^ERROR\s+transform: no such key: message \(evaluate\)$`, out)
	require.Equal(t, "webhookctl: filter: does not compile\n", errOut)

	// Fails on the sample only: printed, exit 0.
	out, errOut, code = d.ctl("subscriptions", "try", "--event", "alert.triggered", "--data", `{"fleet":"north"}`,
		"--filter", `data.severity == "critical"`)
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^MATCHED\s+no$`, out)
	require.Regexp(t, `(?m)^BODY\s+\{"id":"evt_try_sample","event":"alert.triggered","timestamp":"[0-9T:Z-]+","data":\{"fleet":"north"\}\}$`, out)
	require.Regexp(t, `(?m)^ERROR\s+filter: no such key: severity \(evaluate\)$`, out)

	var sub client.Subscription
	d.ctlJSON(t, &sub, "subscriptions", "create", "--url", "https://h.example/x", "--events", "alert.triggered",
		"--filter", `data.severity == "critical"`, "--transform", `{"sev": data.severity}`)
	var res client.TryResult
	d.ctlJSON(t, &res, "subscriptions", "try", sub.ID, "--event", "alert.triggered", "--data", `{"severity":"critical"}`)
	require.True(t, res.Matched)
	require.JSONEq(t, `{"sev":"critical"}`, string(res.Body))
	require.Empty(t, res.Errors)
	oneLineError(t, d, "not found", "subscriptions", "try", "6f1c0000-0000-4000-8000-000000000001", "--event", "alert.triggered", "--data", `{}`)
	oneLineError(t, d, "not in the catalog", "subscriptions", "try", "--event", "no.such", "--data", `{}`)
}
