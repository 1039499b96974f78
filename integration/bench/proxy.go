package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// proxyOptions shape a proxy's faults. The zero value forwards untouched.
type proxyOptions struct {
	// latencyMin and latencyMax bound the delay added before each request is forwarded,
	// drawn uniformly: the round trips a WAN adds.
	latencyMin, latencyMax time.Duration
	// rate caps each client TCP connection at this many bytes per second towards the
	// client, as CDNs and long paths cap single flows; 0 means no cap.
	rate int64
	// resetEvery resets a client connection (RST, not FIN) once this many bytes were
	// written to it; 0 means never.
	resetEvery int64
	// tls serves https with a self-signed certificate for 127.0.0.1, offering HTTP/2 as
	// registries behind a CDN do; clients must skip verification.
	tls bool
}

// proxy is an HTTP reverse proxy on loopback in front of the registry, shaping the
// connections its clients open. Its counters are safe for concurrent use.
type proxy struct {
	// host is host:port, the registry name clients use in references.
	host   string
	scheme string // "http" or "https"
	server *http.Server
	// moved counts the bytes written to clients: headers and bodies, including bytes
	// lost when a connection was reset.
	moved  atomic.Int64
	resets atomic.Int64
	conns  atomic.Int64
}

// startProxy listens on a loopback port and forwards to target (http://host:port).
func startProxy(target string, opts proxyOptions, seed uint64) (*proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}

	p := &proxy{host: ln.Addr().String()}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		// A reset connection makes the copy fail; that is the point, not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	delay := newDelayer(opts.latencyMin, opts.latencyMax, seed)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay.next())
		rp.ServeHTTP(w, r)
	})
	p.server = &http.Server{Handler: handler, ErrorLog: log.New(io.Discard, "", 0)}
	shaped := &shapedListener{Listener: ln, opts: opts, p: p}
	p.scheme = "http"
	if !opts.tls {
		go p.server.Serve(shaped)
		return p, nil
	}

	cert, err := selfSignedCert()
	if err != nil {
		ln.Close()
		return nil, err
	}
	p.scheme = "https"
	// The rate cap and resets act on the TCP connection under TLS, as on a real path.
	p.server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert},
		NextProtos: []string{"h2", "http/1.1"}}
	go p.server.ServeTLS(shaped, "", "")
	return p, nil
}

// selfSignedCert makes a certificate for 127.0.0.1, valid for a day.
func selfSignedCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "dls bench proxy"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// close stops the proxy and its connections.
func (p *proxy) close() { p.server.Close() }

// delayer draws per-request delays from a seeded generator.
type delayer struct {
	mu       sync.Mutex
	rng      *rand.Rand
	min, max time.Duration
}

func newDelayer(lo, hi time.Duration, seed uint64) *delayer {
	return &delayer{rng: rand.New(rand.NewPCG(seed, seed+1)), min: lo, max: hi}
}

func (d *delayer) next() time.Duration {
	if d.max <= 0 {
		return 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.min + time.Duration(d.rng.Int64N(int64(d.max-d.min)+1))
}

// shapedListener wraps each accepted connection in a shapedConn.
type shapedListener struct {
	net.Listener
	opts proxyOptions
	p    *proxy
}

func (l *shapedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.p.conns.Add(1)
	return &shapedConn{Conn: c, opts: l.opts, p: l.p, last: time.Now()}, nil
}

// errReset is what a write on a connection the proxy reset returns.
var errReset = errors.New("connection reset by the bench proxy")

// shapedConn paces writes with a token bucket and resets itself after resetEvery bytes.
type shapedConn struct {
	net.Conn
	opts    proxyOptions
	p       *proxy
	mu      sync.Mutex
	written int64
	tokens  float64
	last    time.Time
	reset   bool
}

// writeChunk is the largest write made at once, so pacing stays smooth.
const writeChunk = 32 << 10

func (c *shapedConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for len(b) > 0 {
		if c.reset {
			return total, errReset
		}
		n := min(len(b), writeChunk)
		if c.opts.resetEvery > 0 {
			n = int(min(int64(n), c.opts.resetEvery-c.written))
		}
		c.pace(n)
		k, err := c.Conn.Write(b[:n])
		total += k
		c.written += int64(k)
		c.p.moved.Add(int64(k))
		if err != nil {
			return total, err
		}
		b = b[k:]
		if c.opts.resetEvery > 0 && c.written >= c.opts.resetEvery {
			c.resetNow()
		}
	}
	return total, nil
}

// pace sleeps until the bucket holds n bytes' worth of tokens, then takes them. The bucket
// holds at most one chunk, so an idle connection cannot burst.
func (c *shapedConn) pace(n int) {
	if c.opts.rate <= 0 {
		return
	}
	now := time.Now()
	rate := float64(c.opts.rate)
	c.tokens = min(c.tokens+now.Sub(c.last).Seconds()*rate, writeChunk)
	c.last = now
	c.tokens -= float64(n)
	if c.tokens < 0 {
		time.Sleep(time.Duration(-c.tokens / rate * float64(time.Second)))
	}
}

// resetNow closes the connection with an RST, dropping whatever the client has not read.
func (c *shapedConn) resetNow() {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Conn.Close()
	c.reset = true
	c.p.resets.Add(1)
}

// hostOf returns host:port of a base URL.
func hostOf(base string) string {
	return strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
}
