package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// TokenInput creates a team token.
type TokenInput struct {
	// Name identifies the token (lower-case letters, digits, '-', '_').
	Name string `json:"name"`
	// Owner is the team: the token sees and manages only the
	// subscriptions labelled owner=Owner.
	Owner string `json:"owner"`
}

// Token is a team token as the API shows it. Token, the bearer value, is
// set only in the answer that created it: the server keeps its SHA-256.
type Token struct {
	Name      string    `json:"name"`
	Owner     string    `json:"owner"`
	CreatedAt time.Time `json:"created_at"`
	Token     string    `json:"token,omitempty"`
}

// CreateToken creates a team token; the answer is the only one that
// carries it.
func (c *Client) CreateToken(ctx context.Context, in TokenInput) (Token, error) {
	var t Token
	return t, c.do(ctx, http.MethodPost, "/v1/tokens", in, &t)
}

// ListTokens lists the team tokens (never their values).
func (c *Client) ListTokens(ctx context.Context) ([]Token, error) {
	var l List[Token]
	return l.Items, c.do(ctx, http.MethodGet, "/v1/tokens", nil, &l)
}

// DeleteToken deletes a team token: every replica refuses it from then on.
func (c *Client) DeleteToken(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(name), nil, nil)
}
