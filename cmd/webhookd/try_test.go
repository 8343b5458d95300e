package main

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/robotlab/webhookd/admin/client"
)

// POST /v1/subscriptions/try evaluates with the server's compiler: the
// filter's verdict, the body (the transform's object, or the envelope),
// and each error with its field, position and stage; a subscription's
// expressions stand in for those the request leaves out.
func TestTryEvaluatesASample(t *testing.T) {
	d := start(t)
	var res client.TryResult
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/try", d.token, `{"event":"alert.triggered",
		"data":{"severity":"critical","robot_id":"R7","message":"hot"},
		"filter":"data.severity == \"critical\"","transform":"{\"text\": data.robot_id + \": \" + data.message}"}`, &res))
	require.True(t, res.Matched)
	require.JSONEq(t, `{"text":"R7: hot"}`, string(res.Body))
	require.Empty(t, res.Errors)
	require.NotNil(t, res.Errors, "an empty list, not null")

	// No transform: the envelope; a filter that gives false.
	res = client.TryResult{}
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/try", d.token, `{"event":"alert.triggered",
		"data":{"severity":"info"},"filter":"data.severity == \"critical\""}`, &res))
	require.False(t, res.Matched)
	var env map[string]any
	require.NoError(t, json.Unmarshal(res.Body, &env))
	require.Equal(t, "alert.triggered", env["event"])
	require.Equal(t, map[string]any{"severity": "info"}, env["data"])

	// Errors: a filter that does not compile (with its position), a
	// transform that fails on the sample (no body).
	res = client.TryResult{}
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/try", d.token, `{"event":"alert.triggered",
		"data":{"severity":"info"},"filter":"data.severity ==","transform":"{\"text\": data.message}"}`, &res))
	require.False(t, res.Matched)
	require.Equal(t, "null", string(res.Body))
	require.Len(t, res.Errors, 2)
	require.Equal(t, client.ExprError{Field: "filter", Line: 1, Column: 17, Message: res.Errors[0].Message, Stage: "compile"}, res.Errors[0])
	require.Contains(t, res.Errors[0].Message, "Syntax error")
	require.Equal(t, "transform", res.Errors[1].Field)
	require.Equal(t, "evaluate", res.Errors[1].Stage)
	require.Contains(t, res.Errors[1].Message, "no such key: message")

	// A subscription's expressions where the request gives none.
	var sub client.Subscription
	require.Equal(t, 201, d.call(t, "POST", "/v1/subscriptions", d.token, `{"url":"https://h.example/x","events":["alert.triggered"],
		"filter":"data.severity == \"critical\"","transform":"{\"sev\": data.severity}"}`, &sub))
	res = client.TryResult{}
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/try", d.token, `{"event":"alert.triggered",
		"data":{"severity":"critical"},"subscription_id":"`+sub.ID+`"}`, &res))
	require.True(t, res.Matched)
	require.JSONEq(t, `{"sev":"critical"}`, string(res.Body))
	res = client.TryResult{}
	require.Equal(t, 200, d.call(t, "POST", "/v1/subscriptions/try", d.token, `{"event":"alert.triggered",
		"data":{"severity":"critical"},"subscription_id":"`+sub.ID+`","filter":"false"}`, &res))
	require.False(t, res.Matched, "the request's filter first")
	require.JSONEq(t, `{"sev":"critical"}`, string(res.Body), "the subscription's transform")

	// A bad sample is a 400; an unknown subscription a 404.
	for body, code := range map[string]int{
		`{"event":"no.such","data":{}}`:          http.StatusBadRequest,
		`{"event":"alert.triggered","data":[1]}`: http.StatusBadRequest,
		`{"event":"alert.triggered"}`:            http.StatusBadRequest,
		`{"event":"alert.triggered","data":{},"subscription_id":"6f1c0000-0000-4000-8000-000000000001"}`: http.StatusNotFound,
	} {
		var e apiErr
		require.Equal(t, code, d.call(t, "POST", "/v1/subscriptions/try", d.token, body, &e), body)
		require.NotEmpty(t, e.Error.Message)
	}
}
