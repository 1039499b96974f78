package registry

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/sync/singleflight"
)

// Defaults for Options fields left zero.
const (
	defaultRetryMax     = 5
	defaultRetryWaitMin = time.Second
	defaultRetryWaitMax = time.Minute
	defaultIdleTimeout  = 30 * time.Second
	defaultUserAgent    = "dls"
)

// Options configure a Client. The zero value fetches from registries' own endpoints with
// the default retry budget.
type Options struct {
	// Config holds registries.yaml mirrors and configs; nil means no mirrors, no logins.
	Config *RegistriesConfig
	// Logger receives debug lines for each request and retry and warnings for recovered
	// faults. It never sees credentials or signed URL queries. nil means slog.Default().
	Logger *slog.Logger
	// RetryMax is how many times a failed request is repeated (and how many attempts
	// without progress a blob may take); 0 means 5. A negative value means no retries at
	// all: each request (ping, token, manifest, blob) is sent once per endpoint, and a
	// blob body cut mid-way is not resumed within the call.
	RetryMax int
	// RetryWaitMin is the first backoff wait, doubled on each retry, with jitter; 0 means 1s.
	RetryWaitMin time.Duration
	// RetryWaitMax is the longest single wait; 0 means 1m. A Retry-After asking for longer
	// fails at once with ErrRateLimited instead of sleeping.
	RetryWaitMax time.Duration
	// IdleTimeout cuts a response that sends no bytes for this long; the blob then
	// continues from where it stopped. 0 means 30s.
	IdleTimeout time.Duration
	// MaxPerHost bounds concurrent manifest and blob requests per endpoint host; 0
	// means no bound (callers bound their own fan-out).
	MaxPerHost int
	// UserAgent is sent with every request; "" means "dls".
	UserAgent string
	// Keychain supplies logins for hosts registries.yaml has none for; nil means
	// DefaultKeychain(): per host, Docker's config.json (with its credential helpers),
	// then Podman's auth.json. authn.NewMultiKeychain() with no arguments means none.
	Keychain authn.Keychain
	// Transport replaces the tuned default transport for every host (tests inject fault
	// proxies here). registries.yaml tls settings apply only to the default transport.
	Transport http.RoundTripper
}

// Client fetches manifests and blobs. It is safe for concurrent use; it caches ping
// results, tokens and unreachable hosts for its lifetime.
type Client struct {
	opts    Options
	log     *slog.Logger
	mirrors map[string]mirrorSet
	http    *http.Client
	hosts   hostStates
	pings   singleflight.Group // one ping in flight per endpoint
	tokens  tokenCache
	keys    keychainCache
	stats   statsBook
	limiter hostLimiter
}

// NewClient checks opts and builds a client. It fails on a registries.yaml entry that
// cannot be used (a bad endpoint, rewrite pattern, or TLS file).
func NewClient(opts Options) (*Client, error) {
	opts = withDefaults(opts)
	if opts.Config != nil {
		if err := opts.Config.validate(); err != nil {
			return nil, fmt.Errorf("create registry client: %w", err)
		}
	}

	mirrors, err := compileMirrors(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("create registry client: %w", err)
	}

	base := opts.Transport
	if base == nil {
		base, err = newHostTransports(opts.Config, opts.IdleTimeout)
		if err != nil {
			return nil, fmt.Errorf("create registry client: %w", err)
		}
	}

	c := &Client{opts: opts, log: opts.Logger, mirrors: mirrors}
	c.limiter.limit = opts.MaxPerHost
	c.http = &http.Client{
		Transport:     &authTransport{next: base, userAgent: opts.UserAgent},
		CheckRedirect: c.checkRedirect,
	}
	return c, nil
}

// withDefaults fills the zero fields of opts.
func withDefaults(opts Options) Options {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	switch {
	case opts.RetryMax == 0:
		opts.RetryMax = defaultRetryMax
	case opts.RetryMax < 0:
		opts.RetryMax = 0
	}
	if opts.RetryWaitMin <= 0 {
		opts.RetryWaitMin = defaultRetryWaitMin
	}
	if opts.RetryWaitMax <= 0 {
		opts.RetryWaitMax = defaultRetryWaitMax
	}
	if opts.RetryWaitMax < opts.RetryWaitMin {
		opts.RetryWaitMax = opts.RetryWaitMin
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = defaultIdleTimeout
	}
	if opts.Keychain == nil {
		opts.Keychain = DefaultKeychain()
	}
	if opts.UserAgent == "" {
		opts.UserAgent = defaultUserAgent
	}
	return opts
}

// endpoints lists where ref is fetched from, in order: mirrors, then the registry. A host
// with a registries.yaml tls section is reached over https only.
func (c *Client) endpoints(ref reference.Named) []*endpoint {
	eps := endpointsFor(c.mirrors, ref)
	for _, ep := range eps {
		if ep.tryHTTP && c.opts.Config.hasTLSConfig(ep.base.Host) {
			ep.tryHTTP = false
		}
	}
	return eps
}
