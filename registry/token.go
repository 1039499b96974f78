package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// tokenResponse is a token server's answer (distribution token spec and OAuth2).
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// fetchToken asks the realm for a token for scope (space-separated scopes become one
// scope parameter each). With an identity token it uses the OAuth2 refresh-token POST;
// otherwise a GET, with Basic credentials when we have a login, anonymous when not.
// It returns the token and how long it lives.
func (c *Client) fetchToken(ctx context.Context, ep *endpoint, realm, service, scope string,
	cr credentials) (string, time.Duration, error) {
	u, err := checkRealm(ep, realm)
	if err != nil {
		return "", 0, err
	}

	q := u.Query()
	if service != "" {
		q.Set("service", service)
	}
	for _, s := range strings.Fields(scope) {
		q.Add("scope", s)
	}

	var rs retryStats
	var resp *http.Response
	if cr.identityToken != "" {
		resp, err = c.postRefreshToken(ctx, u, q, cr.identityToken, &rs)
	} else {
		u.RawQuery = q.Encode()
		if cr.user != "" {
			ctx = withAuth(ctx, u, basicAuth(cr.user, cr.pass))
		}
		resp, err = c.do(ctx, http.MethodGet, u.String(), nil, nil, &rs)
	}
	if err != nil {
		return "", 0, err
	}
	defer drainClose(resp.Body)

	return readToken(resp)
}

// postRefreshToken sends the OAuth2 refresh_token grant with form, as Docker does with
// an identity token from docker login.
func (c *Client) postRefreshToken(ctx context.Context, u *url.URL, form url.Values,
	refresh string, rs *retryStats) (*http.Response, error) {
	form.Set("grant_type", "refresh_token")
	form.Set("refresh_token", refresh)
	form.Set("client_id", tokenClientID)
	u.RawQuery = ""

	hdr := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	return c.do(ctx, http.MethodPost, u.String(), hdr, strings.NewReader(form.Encode()), rs)
}

// readToken decodes a token response, capped at maxTokenResponse.
func readToken(resp *http.Response) (string, time.Duration, error) {
	if !httpStatusOK(resp.StatusCode) {
		return "", 0, responseError(resp)
	}

	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse+1))
	if err != nil {
		return "", 0, fmt.Errorf("read token response: %w", err)
	}
	if len(data) > maxTokenResponse {
		return "", 0, fmt.Errorf("token response larger than %d bytes", maxTokenResponse)
	}

	var tr tokenResponse
	if err := json.Unmarshal(data, &tr); err != nil {
		return "", 0, fmt.Errorf("decode token response: %w", err)
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" {
		return "", 0, fmt.Errorf("token response holds no token")
	}

	// issued_at is ignored on purpose: our clock starts now, so skew cannot shorten it.
	ttl := defaultTokenTTL
	if tr.ExpiresIn > 0 {
		ttl = time.Duration(tr.ExpiresIn) * time.Second
	}
	return tok, ttl, nil
}

// httpStatusOK reports a 2xx status.
func httpStatusOK(code int) bool { return code >= http.StatusOK && code < 300 }
