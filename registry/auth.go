package registry

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
)

const (
	// maxTokenResponse caps a token server's answer; real ones are a few kilobytes.
	maxTokenResponse = 1 << 20
	// defaultTokenTTL applies when a token response has no expires_in (token spec).
	defaultTokenTTL = 60 * time.Second
	// tokenClientID names dls to OAuth2 token endpoints, which require a client_id.
	tokenClientID = "dls"
)

// authHeader is the Authorization value for one request and, for a bearer token, the
// cache key to drop when the registry refuses it.
type authHeader struct {
	value    string
	tokenKey string
}

// pullScope is the token scope for pulling repo (the path at the endpoint).
func pullScope(repo string) string { return "repository:" + repo + ":pull" }

// authorize returns what to send to ep for scope: a bearer token (cached per realm,
// service, scope and user), Basic credentials when ep asks for Basic and we have a login,
// or nothing for an open registry.
func (c *Client) authorize(ctx context.Context, ep *endpoint, scope string) (authHeader, error) {
	cs := c.challengesOf(ep)
	cr := c.credentialsFor(ctx, ep)
	if ch := findChallenge(cs, "bearer"); ch != nil {
		return c.bearer(ctx, ep, ch, scope, cr)
	}
	if findChallenge(cs, "basic") != nil && cr.user != "" {
		return authHeader{value: basicAuth(cr.user, cr.pass)}, nil
	}
	return authHeader{}, nil
}

// bearer returns a cached token or fetches one. Concurrent callers needing the same token
// wait for one fetch.
func (c *Client) bearer(ctx context.Context, ep *endpoint, ch *challenge, scope string,
	cr credentials) (authHeader, error) {
	realm, service := ch.params["realm"], ch.params["service"]
	key := strings.Join([]string{realm, service, scope, cr.user}, "\x00")
	e := c.tokens.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()

	if e.value != "" && time.Now().Before(e.expires) {
		return authHeader{value: "Bearer " + e.value, tokenKey: key}, nil
	}

	tok, ttl, err := c.fetchToken(ctx, ep, realm, service, scope, cr)
	if err != nil {
		return authHeader{}, fmt.Errorf("get token for %s from %s: %w", scope, redact(realm), err)
	}

	// Renew a little before expiry: the token spent time in transit, and clocks differ.
	e.value, e.expires = tok, time.Now().Add(ttl*9/10)
	return authHeader{value: "Bearer " + tok, tokenKey: key}, nil
}

// basicAuth is the Authorization value for a Basic login.
func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// checkRealm refuses token realms a registry should not send us to: plain http from an
// https registry (the credentials would travel in clear), and internal IP literals from
// a registry that is not itself internal (a public registry steering us at our network).
func checkRealm(ep *endpoint, realm string) (*url.URL, error) {
	if realm == "" {
		return nil, fmt.Errorf("bearer challenge of %s has no realm", ep)
	}
	u, err := url.Parse(realm)
	if err != nil {
		return nil, fmt.Errorf("parse token realm: %w", err)
	}

	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (ep.base.Scheme == "http" || ep.tryHTTP):
	default:
		return nil, fmt.Errorf("refusing token realm %s of %s: scheme must be https",
			redact(realm), ep)
	}
	if isInternal(u.Hostname()) && !isInternal(ep.base.Hostname()) {
		return nil, fmt.Errorf("refusing token realm %s: an internal address named by %s",
			redact(realm), ep)
	}
	return u, nil
}

// isInternal reports whether host is localhost or a loopback, private, link-local or
// unspecified IP literal. Names other than localhost are not resolved.
func isInternal(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsUnspecified())
}

// tokenCache holds bearer tokens by realm, service, scope and user.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]*tokenEntry
}

// tokenEntry is one cached token; its mutex serialises fetches of the same token.
type tokenEntry struct {
	mu      sync.Mutex
	value   string
	expires time.Time
}

func (tc *tokenCache) entry(key string) *tokenEntry {
	tc.mu.Lock()
	defer tc.mu.Unlock()

	if tc.m == nil {
		tc.m = map[string]*tokenEntry{}
	}
	e, ok := tc.m[key]
	if !ok {
		e = &tokenEntry{}
		tc.m[key] = e
	}
	return e
}

// invalidate drops a token the registry refused, so the next authorize fetches anew.
func (tc *tokenCache) invalidate(key string) {
	if key == "" {
		return
	}
	e := tc.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()

	e.value = ""
}
