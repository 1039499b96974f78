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
	"time"

	"github.com/opencontainers/go-digest"
)

// throttleChunk is how many bytes of a blob body the proxy sends between two pauses.
const throttleChunk = 4 << 10

// proxyOptions choose what a blobProxy does to blob GETs; the zero value only records them.
type proxyOptions struct {
	// Delay is the pause after each throttleChunk bytes of a blob body, to make a fetch
	// last long enough to be killed in the middle of a transfer.
	Delay time.Duration
	// Hold makes blob GETs wait until Release, so a fetch holds the cache lock for as long
	// as the test needs.
	Hold bool
}

// blobProxy is a reverse proxy in front of a test registry that records the digest of every
// blob GET and can slow those down or hold them. The registry behind it is real; the proxy
// only shapes timing, which the registry cannot.
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

// handler records, holds and throttles blob GETs before passing them on.
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
		if p.opts.Delay > 0 {
			w = throttledWriter{ResponseWriter: w, delay: p.opts.Delay}
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

// throttledWriter writes a body throttleChunk bytes at a time with a pause after each.
type throttledWriter struct {
	http.ResponseWriter
	delay time.Duration
}

func (w throttledWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n := min(len(b), throttleChunk)
		m, err := w.ResponseWriter.Write(b[:n])
		written += m
		if err != nil {
			return written, err
		}
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		time.Sleep(w.delay)
		b = b[n:]
	}

	return written, nil
}
