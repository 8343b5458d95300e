package client

import (
	"context"
	"encoding/json"
	"net/http"
)

// TryRequest asks the server to evaluate expressions against a sample
// event without sending anything (POST /v1/subscriptions/try).
type TryRequest struct {
	// Event is the sample's type (a catalog type); Data its data object.
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	// Filter and Transform are the expressions to try; empty: those of
	// the subscription SubscriptionID, if given, else none.
	Filter         string `json:"filter,omitempty"`
	Transform      string `json:"transform,omitempty"`
	SubscriptionID string `json:"subscription_id,omitempty"`
}

// TryResult is what the sample would come to.
type TryResult struct {
	// Matched is whether the filter lets the sample through (true without
	// a filter; false when it fails).
	Matched bool `json:"matched"`
	// Body is the body that would be sent: the transform's object, or the
	// envelope without a transform; null when the transform fails.
	Body json.RawMessage `json:"body"`
	// Errors lists each expression's error, compile or evaluation.
	Errors []ExprError `json:"errors"`
}

// ExprError is one expression's error. Line and Column (1-based) locate
// a compile error in the source; zero when it has no position.
type ExprError struct {
	Field   string `json:"field"` // filter or transform
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Message string `json:"message"`
	// Stage is "compile" (the expression does not compile or gives the
	// wrong type: the API would refuse it) or "evaluate" (it fails on
	// this sample: a filter then does not match, a transform fails the
	// delivery).
	Stage string `json:"stage"`
}

// Try evaluates a filter and a transform against a sample event with the
// server's own compiler.
func (c *Client) Try(ctx context.Context, req TryRequest) (TryResult, error) {
	var out TryResult
	return out, c.do(ctx, http.MethodPost, "/v1/subscriptions/try", req, &out)
}
