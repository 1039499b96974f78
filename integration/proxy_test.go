package integration

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// proxyOptions choose what a blobProxy does to blob GETs; the zero value only records them.
type proxyOptions struct {
	// Hold makes blob GETs wait until Release, so a fetch holds the cache lock for as long
	// as the test needs.
	Hold bool
}

// blobProxy is a reverse proxy in front of a test registry that records the digest of every
// blob GET and can hold them. The registry behind it is real; the proxy only sees which
// blobs are asked for and when they are answered, which the registry cannot be told to do.
// (faultproxy shapes bandwidth and failures, but neither records digests nor holds.)
type blobProxy struct {
	URL  string
	opts proxyOptions

	mu   sync.Mutex
	gets []digest.Digest

	release func()
	held    chan struct{}
}

// startProxy proxies to the registry at target until the test ends.
func startProxy(t testing.TB, target string, opts proxyOptions) *blobProxy {
	t.Helper()

	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &blobProxy{opts: opts, held: make(chan struct{})}
	p.release = sync.OnceFunc(func() { close(p.held) })
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(p.handler(rp))
	t.Cleanup(srv.Close)
	t.Cleanup(p.release) // runs first: held requests must end before the server closes
	p.URL = srv.URL

	return p
}

// handler records and holds blob GETs before passing them on.
func (p *blobProxy) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, encoded, isBlob := strings.Cut(r.URL.Path, "/blobs/")
		if r.Method != http.MethodGet || !isBlob || strings.HasPrefix(encoded, "uploads") {
			next.ServeHTTP(w, r)
			return
		}

		p.mu.Lock()
		p.gets = append(p.gets, digest.Digest(encoded))
		p.mu.Unlock()
		if p.opts.Hold {
			select {
			case <-p.held:
			case <-r.Context().Done():
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Release lets held blob GETs through; later ones pass at once.
func (p *blobProxy) Release() { p.release() }

// BlobGETs returns the digests of the blob GETs so far, sorted.
func (p *blobProxy) BlobGETs() []digest.Digest {
	p.mu.Lock()
	defer p.mu.Unlock()

	gets := slices.Clone(p.gets)
	slices.Sort(gets)

	return gets
}

// Reset forgets the blob GETs so far.
func (p *blobProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()

	p.gets = nil
}
