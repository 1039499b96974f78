package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// apiRequest is one GET (or HEAD) against an endpoint's API for a repository.
type apiRequest struct {
	method string // "" means GET
	ep     *endpoint
	repo   string      // the path at this endpoint, after rewrites; it makes the scope
	url    string      // the full API URL
	header http.Header // Accept, Range
	stats  *retryStats
}

// send performs r with authentication and retries. On a 401 it learns the new challenge,
// drops the refused token (or asks for the scope the registry says is missing) and tries
// once more; a second 401 is an ErrUnauthorized error. Any other status is returned with
// the response; the caller closes its body.
func (c *Client) send(ctx context.Context, r apiRequest) (*http.Response, error) {
	if err := c.ping(ctx, r.ep); err != nil {
		return nil, err
	}

	method := r.method
	if method == "" {
		method = http.MethodGet
	}
	scope := pullScope(r.repo)
	for renewed := false; ; renewed = true {
		auth, err := c.authorize(ctx, r.ep, scope)
		if err != nil {
			return nil, err
		}

		actx := withAuth(ctx, r.ep.base, auth.value)
		resp, err := c.do(actx, method, r.url, r.header, nil, r.stats)
		if err != nil {
			if errors.Is(err, ErrUnreachable) {
				c.markDown(r.ep, err)
			}
			return nil, err
		}
		if resp.StatusCode != http.StatusUnauthorized {
			return resp, nil
		}
		if renewed {
			defer drainClose(resp.Body)
			return nil, c.unauthorized(ctx, r.ep, resp)
		}

		scope = c.renewAuth(r.ep, resp, auth, scope)
		drainClose(resp.Body)
	}
}

// renewAuth handles a 401: it records the challenges the registry sent, drops the token
// it refused, and returns the scope to ask for next (the one an insufficient_scope error
// names, else the same).
func (c *Client) renewAuth(ep *endpoint, resp *http.Response, auth authHeader,
	scope string) string {
	cs := parseChallenges(resp.Header.Values("WWW-Authenticate"))
	c.setChallenges(ep, cs)
	c.tokens.invalidate(auth.tokenKey)

	if ch := findChallenge(cs, "bearer"); ch != nil && ch.params["error"] ==
		"insufficient_scope" && ch.params["scope"] != "" {
		c.log.Debug("registry asks for another scope", "endpoint", ep.String(),
			"scope", ch.params["scope"])
		return ch.params["scope"]
	}
	return scope
}

// unauthorized describes a final 401, with a hint when we sent no credentials.
func (c *Client) unauthorized(ctx context.Context, ep *endpoint, resp *http.Response) error {
	err := responseError(resp)
	if !c.credentialsFor(ctx, ep).empty() {
		return err
	}
	return fmt.Errorf("%w (the repository may not exist, or %s needs a login: add "+
		"configs.%q.auth to registries.yaml or log in with docker login or podman login)",
		err, ep.base.Host, ep.base.Host)
}
