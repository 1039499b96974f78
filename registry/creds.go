package registry

import (
	"context"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
)

// keychainDockerHub is the name Docker's config.json files Docker Hub logins under
// (after go-containerregistry maps it to "https://index.docker.io/v1/").
const keychainDockerHub = "index.docker.io"

// credentials are a login for one endpoint; the zero value means anonymous.
type credentials struct {
	user, pass    string
	identityToken string // OAuth2 refresh token, used instead of user and password
}

func (cr credentials) empty() bool { return cr.user == "" && cr.identityToken == "" }

// keychainCache remembers the keychain's answer per host for the client's lifetime:
// credential helpers are processes, and config files do not change during a fetch.
type keychainCache struct {
	mu sync.Mutex
	m  map[string]credentials
}

// credentialsFor returns the login for ep: registries.yaml configs first (keyed by the
// endpoint's host[:port], and at the registry's own endpoint also by the registry name,
// "docker.io" for registry-1.docker.io), then the keychain (Docker's config.json,
// Podman's auth.json, credential helpers). None means anonymous.
func (c *Client) credentialsFor(ctx context.Context, ep *endpoint) credentials {
	if cr, ok := c.configCredentials(ep); ok {
		return cr
	}

	host := ep.base.Host
	if !ep.mirror {
		host = ep.registry
		if host == dockerHubDomain {
			host = keychainDockerHub
		}
	}
	return c.keychainCredentials(ctx, host)
}

// configCredentials looks ep up in registries.yaml configs.
func (c *Client) configCredentials(ep *endpoint) (credentials, bool) {
	cfg := c.opts.Config
	if cfg == nil {
		return credentials{}, false
	}
	keys := []string{ep.base.Host}
	if !ep.mirror {
		keys = append(keys, ep.registry)
	}
	for _, k := range keys {
		hc, ok := cfg.Configs[k]
		if !ok || hc.Auth == nil {
			continue
		}
		user, pass, err := hc.Auth.credentials()
		if err != nil {
			continue // NewClient validated the config; cannot happen
		}
		return credentials{user: user, pass: pass, identityToken: hc.Auth.IdentityToken}, true
	}
	return credentials{}, false
}

// keychainCredentials asks the keychain for host once and caches the answer. A keychain
// that fails (a broken config file, a helper that errors) is logged and treated as no
// login: public images still work, and a 401 then says credentials are missing.
func (c *Client) keychainCredentials(ctx context.Context, host string) credentials {
	c.keys.mu.Lock()
	defer c.keys.mu.Unlock()

	if cr, ok := c.keys.m[host]; ok {
		return cr
	}
	if c.keys.m == nil {
		c.keys.m = map[string]credentials{}
	}

	cr, err := resolveKeychain(ctx, c.opts.Keychain, host)
	if err != nil {
		c.log.Warn("credential lookup failed; continuing without a login", "host", host,
			"error", err)
	}
	if !cr.empty() {
		c.log.Debug("using credentials from the keychain", "host", host, "user", cr.user)
	}
	c.keys.m[host] = cr
	return cr
}

// resolveKeychain asks kc for host's login.
func resolveKeychain(ctx context.Context, kc authn.Keychain, host string) (credentials, error) {
	auth, err := authn.Resolve(ctx, kc, keychainResource(host))
	if err != nil {
		return credentials{}, err
	}

	ac, err := authn.Authorization(ctx, auth)
	if err != nil {
		return credentials{}, err
	}

	// TODO: RegistryToken (a bearer token sent as is) is not used; no registry dls
	// targets hands them out, and config.json files rarely hold one.
	a := AuthConfig{Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
		IdentityToken: ac.IdentityToken}
	user, pass, err := a.credentials()
	if err != nil {
		return credentials{}, err
	}
	return credentials{user: user, pass: pass, identityToken: ac.IdentityToken}, nil
}

// keychainResource names a registry host to a keychain.
type keychainResource string

func (r keychainResource) String() string      { return string(r) }
func (r keychainResource) RegistryStr() string { return string(r) }
