package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/net/http/httpproxy"
)

// Transport tuning for the default transport.
const (
	dialTimeout         = 30 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	idleConnTimeout     = 90 * time.Second
	maxIdleConnsPerHost = 16
	maxRedirects        = 10
)

// authKey is the context key of the Authorization value for one request.
type authKey struct{}

// requestAuth is an Authorization value and the one origin (scheme://host:port) it may be
// sent to. Redirects to any other origin go out without it.
type requestAuth struct {
	origin string
	header string
}

// withAuth returns ctx carrying header for requests to u's origin; "" carries nothing.
func withAuth(ctx context.Context, u *url.URL, header string) context.Context {
	if header == "" {
		return ctx
	}
	return context.WithValue(ctx, authKey{}, &requestAuth{origin: origin(u), header: header})
}

// authTransport attaches Authorization per request host, at the last moment, so a
// redirect to a blob store or CDN never carries a registry token (presigned S3 URLs
// refuse requests with two auth mechanisms, and tokens must not leak across hosts).
type authTransport struct {
	next      http.RoundTripper
	userAgent string
}

// RoundTrip implements http.RoundTripper; it never modifies req.
func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.Header.Set("User-Agent", t.userAgent)
	out.Header.Del("Authorization")
	if a, ok := req.Context().Value(authKey{}).(*requestAuth); ok && a.origin == origin(req.URL) {
		out.Header.Set("Authorization", a.header)
	}
	return t.next.RoundTrip(out)
}

// checkRedirect is the redirect policy: it drops any Authorization header when the
// origin changes (net/http keeps it for subdomains and ignores ports; we do not), and
// logs the hop without the target's query, which may hold a signature.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if origin(req.URL) != origin(via[0].URL) {
		req.Header.Del("Authorization")
	}
	c.log.Debug("redirect", "from", redact(via[len(via)-1].URL.String()),
		"to", redact(req.URL.String()))
	return nil
}

// origin is scheme://host:port with the port made explicit, for comparing hosts.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	return strings.ToLower(u.Scheme + "://" + net.JoinHostPort(u.Hostname(), port))
}

// hostTransports routes each request to the transports of its host: the pair with that
// host's registries.yaml tls settings, or the shared default pair.
type hostTransports struct {
	byHost map[string]transportPair
	def    transportPair
}

// transportPair is one host's transports: api for pings, tokens and manifests, which may
// speak HTTP/2, and blobs for blob bodies, HTTP/1.1 only. Over HTTP/2 every concurrent blob
// of a host would share one TCP connection, and a long fat link caps each flow: parallel
// downloads gain only as parallel connections.
type transportPair struct {
	api, blobs *http.Transport
}

func newTransportPair(tc *tls.Config, idle time.Duration) transportPair {
	return transportPair{api: newTransport(tc, idle, true), blobs: newTransport(tc, idle, false)}
}

// blobTransferKey marks a request context as a blob body's (withBlobTransfer).
type blobTransferKey struct{}

// withBlobTransfer marks ctx for blob GETs, which hostTransports sends over the host's
// HTTP/1.1 transport, redirects to another host included.
func withBlobTransfer(ctx context.Context) context.Context {
	return context.WithValue(ctx, blobTransferKey{}, true)
}

// newHostTransports builds the default pair and one per configs entry with tls.
func newHostTransports(cfg *RegistriesConfig, idle time.Duration) (*hostTransports, error) {
	ht := &hostTransports{byHost: map[string]transportPair{}, def: newTransportPair(nil, idle)}
	if cfg == nil {
		return ht, nil
	}
	for host, hc := range cfg.Configs {
		if hc.TLS == nil {
			continue
		}
		tc, err := loadTLSConfig(hc.TLS)
		if err != nil {
			return nil, fmt.Errorf("configs %q: %w", host, err)
		}
		ht.byHost[strings.ToLower(host)] = newTransportPair(tc, idle)
	}
	return ht, nil
}

// RoundTrip implements http.RoundTripper.
func (ht *hostTransports) RoundTrip(req *http.Request) (*http.Response, error) {
	pair, ok := ht.byHost[strings.ToLower(req.URL.Host)]
	if !ok {
		pair, ok = ht.byHost[strings.ToLower(req.URL.Hostname())]
	}
	if !ok {
		pair = ht.def
	}

	if req.Context().Value(blobTransferKey{}) != nil {
		return pair.blobs.RoundTrip(req)
	}
	return pair.api.RoundTrip(req)
}

// newTransport is a pooled transport honouring HTTPS_PROXY and NO_PROXY, speaking HTTP/2
// where the server offers it when h2. A response whose headers take longer than idle is
// abandoned, like a stalled body. It picks client certificates from tc (nil: none) through
// withClientCertProbe, so a server that demands one is told apart from one that cannot be
// reached.
func newTransport(tc *tls.Config, idle time.Duration, h2 bool) *http.Transport {
	if tc != nil {
		tc = tc.Clone() // withClientCertProbe sets a hook on it; each transport its own
	}

	return &http.Transport{
		Proxy: envProxy(),
		DialContext: (&net.Dialer{
			Timeout:   dialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     h2,
		TLSClientConfig:       withClientCertProbe(tc),
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ResponseHeaderTimeout: idle,
		IdleConnTimeout:       idleConnTimeout,
		MaxIdleConnsPerHost:   maxIdleConnsPerHost,
		ExpectContinueTimeout: time.Second,
	}
}

// envProxy picks the proxy per request from HTTPS_PROXY, HTTP_PROXY and NO_PROXY (either
// case) as they are now, when the transport is built. http.ProxyFromEnvironment reads them
// once per process, on its first use anywhere (http.DefaultClient included), so a client
// built after the environment changed would still follow the old values. As in net/http,
// localhost and loopback addresses are never proxied.
func envProxy() func(*http.Request) (*url.URL, error) {
	proxy := httpproxy.FromEnvironment().ProxyFunc()
	return func(req *http.Request) (*url.URL, error) { return proxy(req.URL) }
}

// loadTLSConfig reads a registries.yaml tls section: extra CA, client certificate, and
// the choice to skip verification.
func loadTLSConfig(c *TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // user's choice
	if c.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read ca_file %s: no PEM certificate in it", c.CAFile)
		}
		tc.RootCAs = pool
	}

	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("cert_file and key_file must be given together")
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
