package registry

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
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
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

// proxiedName is the registry host name of the proxy tests. It is not loopback (net/http
// and httpproxy never proxy loopback hosts) and is in .test (RFC 6761), so only the
// test's proxy resolves it and a direct dial fails to resolve it.
const proxiedName = "reg.dls.test"

// testPKI is a CA of the test's own that issues server and client certificates.
type testPKI struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	caFile string // the CA certificate in PEM, for ca_file

	mu     sync.Mutex
	serial int64
}

// newTestPKI creates a CA named cn and writes its certificate to a file.
func newTestPKI(t testing.TB, cn string) *testPKI {
	t.Helper()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate CA key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}

	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse CA certificate: %v", err)
	}

	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return &testPKI{cert: cert, key: key, caFile: writeFile(t, "ca.pem", string(caPEM)),
		serial: 1}
}

// issue signs a certificate for cn with usage (server or client auth), valid for hosts
// (IP literals or DNS names).
func (p *testPKI) issue(t testing.TB, cn string, usage x509.ExtKeyUsage,
	hosts ...string) tls.Certificate {
	t.Helper()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key for %s: %v", cn, err)
	}
	p.mu.Lock()
	p.serial++
	serial := p.serial
	p.mu.Unlock()

	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatalf("create certificate for %s: %v", cn, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// pool is a pool holding only the CA, for a server checking client certificates.
func (p *testPKI) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.cert)
	return pool
}

// writeKeyPair writes cert and its key as PEM files, for cert_file and key_file.
func writeKeyPair(t testing.TB, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()

	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return writeFile(t, "client.pem", string(certPEM)), writeFile(t, "client-key.pem",
		string(keyPEM))
}

// tlsFront serves a registry over HTTPS with a TLS config of the test's choosing, counting
// connections and recording, for every request that got past the handshake, what it
// negotiated and the client certificate it presented.
type tlsFront struct {
	url   string // https://127.0.0.1:PORT
	host  string // 127.0.0.1:PORT
	conns *countingListener

	mu     sync.Mutex
	served []servedRequest
}

// servedRequest is what one request negotiated with a tlsFront.
type servedRequest struct {
	proto, version string
	client         string // the client certificate's common name; "" for none
	path           string
	remote         string // the client's address: one per connection
}

// startTLSFrontWith serves reg over HTTPS with cfg, HTTP/1.1 only, until the test ends.
func startTLSFrontWith(t testing.TB, reg *registrytest.Registry, cfg *tls.Config) *tlsFront {
	t.Helper()

	return serveTLSFront(t, reg, cfg, false)
}

// serveTLSFront serves reg over HTTPS with cfg, and HTTP/2 when h2, until the test ends.
// Refused handshakes are logged with the test.
func serveTLSFront(t testing.TB, reg *registrytest.Registry, cfg *tls.Config,
	h2 bool) *tlsFront {
	t.Helper()

	target, err := url.Parse(reg.URL)
	if err != nil {
		t.Fatalf("parse %s: %v", reg.URL, err)
	}

	f := &tlsFront{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			req := servedRequest{proto: r.Proto, version: tls.VersionName(r.TLS.Version),
				path: r.URL.Path, remote: r.RemoteAddr}
			if len(r.TLS.PeerCertificates) > 0 {
				req.client = r.TLS.PeerCertificates[0].Subject.CommonName
			}
			f.mu.Lock()
			f.served = append(f.served, req)
			f.mu.Unlock()
			proxy.ServeHTTP(w, r)
		}))
	f.conns = &countingListener{Listener: srv.Listener}
	srv.Listener = f.conns
	srv.Config.ErrorLog = log.New(t.Output(), "tls front: ", 0)
	srv.EnableHTTP2 = h2
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)

	f.url = srv.URL
	f.host = strings.TrimPrefix(srv.URL, "https://")
	return f
}

// clientNames returns the client certificate names seen, one per request.
func (f *tlsFront) clientNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()

	names := make([]string, len(f.served))
	for i, req := range f.served {
		names[i] = req.client
	}
	return names
}

// servedSince returns what the requests after the first n negotiated, each as
// "HTTP/2.0 TLS 1.3 <client CN or ->".
func (f *tlsFront) servedSince(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()

	var out []string
	for _, req := range f.served[n:] {
		client := cmp.Or(req.client, "-")
		out = append(out, req.proto+" "+req.version+" "+client)
	}
	return out
}

// requests returns every request served so far.
func (f *tlsFront) requests() []servedRequest {
	f.mu.Lock()
	defer f.mu.Unlock()

	return slices.Clone(f.served)
}

// servedCount is how many requests got past the handshake so far.
func (f *tlsFront) servedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()

	return len(f.served)
}

// connectProxy is an HTTPS proxy of the test's own: it answers CONNECT only, logs each
// target, and tunnels to 127.0.0.1 for the one host name it knows, as a corporate proxy
// resolves names the client cannot.
type connectProxy struct {
	url  string
	name string

	mu      sync.Mutex
	targets []string
	conns   []net.Conn
	tunnels sync.WaitGroup
}

// startConnectProxy runs a connectProxy resolving name until the test ends; cleanup
// closes every tunnel and waits for it.
func startConnectProxy(t testing.TB, name string) *connectProxy {
	t.Helper()

	p := &connectProxy{name: name}
	srv := httptest.NewServer(p)
	p.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.tunnels.Wait()
	})
	return p
}

// ServeHTTP answers one CONNECT: it logs the target, refuses any host but p.name, and
// splices the client's connection to the registry until either side closes.
func (p *connectProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "this proxy only tunnels", http.StatusMethodNotAllowed)
		return
	}
	p.mu.Lock()
	p.targets = append(p.targets, r.Host)
	p.mu.Unlock()

	host, port, err := net.SplitHostPort(r.Host)
	if err != nil || host != p.name {
		http.Error(w, "unknown host "+r.Host, http.StatusBadGateway)
		return
	}
	upstream, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}

	client, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		_ = upstream.Close()
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, client, upstream)
	p.mu.Unlock()

	_, _ = io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n")
	p.tunnels.Add(2)
	go p.pipe(upstream, rw, client)
	go p.pipe(client, upstream, upstream)
}

// pipe copies src (read through srcConn's buffered reader, which may hold bytes already)
// to dst until either side ends, then closes both connections, so the other direction
// ends too.
func (p *connectProxy) pipe(dst net.Conn, src io.Reader, srcConn net.Conn) {
	defer p.tunnels.Done()

	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = srcConn.Close()
}

// connects returns the CONNECT targets logged so far, in order.
func (p *connectProxy) connects() []string {
	p.mu.Lock()
	defer p.mu.Unlock()

	return slices.Clone(p.targets)
}

// setProxyEnv sets the proxy variables, in both spellings, to these values only, so the
// machine running the tests adds nothing.
func setProxyEnv(t *testing.T, httpsProxy, noProxy string) {
	t.Helper()

	for _, k := range []string{"HTTP_PROXY", "http_proxy", "https_proxy", "no_proxy"} {
		t.Setenv(k, "")
	}
	t.Setenv("HTTPS_PROXY", httpsProxy)
	t.Setenv("NO_PROXY", noProxy)
}

func TestHTTPSProxyFromEnvironment(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	img := pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 3000)
	pki := newTestPKI(t, "dls proxy test CA")
	front := startTLSFrontWith(t, reg, &tls.Config{Certificates: []tls.Certificate{
		pki.issue(t, proxiedName, x509.ExtKeyUsageServerAuth, proxiedName),
	}})
	_, port, err := net.SplitHostPort(front.host)
	if err != nil {
		t.Fatalf("split %s: %v", front.host, err)
	}
	host := net.JoinHostPort(proxiedName, port)
	cfg := &RegistriesConfig{Configs: map[string]HostConfig{
		host: {TLS: &TLSConfig{CAFile: pki.caFile}},
	}}
	ref := host + "/a/b:1"

	tests := []struct {
		name    string
		noProxy string
		proxied bool // else the client dials the name itself, which does not resolve
	}{
		{"HTTPS_PROXY carries the fetch through CONNECT", "", true},
		{"NO_PROXY naming another host still uses the proxy", "other.test,127.0.0.1", true},
		{"NO_PROXY naming the host bypasses the proxy", proxiedName, false},
		{"NO_PROXY naming the domain bypasses the proxy", ".dls.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg.ResetCounts()
			proxy := startConnectProxy(t, proxiedName)
			setProxyEnv(t, proxy.url, tt.noProxy)
			c := testClient(t, Options{RetryMax: -1, Config: cfg})

			m, err := c.Resolve(context.Background(), mustRef(t, ref))
			if !tt.proxied {
				checkUnresolved(t, err, ref, host)
				if got := proxy.connects(); len(got) != 0 {
					t.Errorf("proxy saw CONNECT %q, want none", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve through the proxy: %v", err)
			}
			if m.Descriptor.Digest != img.manifestDigest {
				t.Errorf("digest = %s, want %s", m.Descriptor.Digest, img.manifestDigest)
			}

			sink := &memSink{}
			if _, err := c.FetchBlob(context.Background(), mustRef(t, ref), img.layer,
				sink); err != nil {
				t.Fatalf("FetchBlob through the proxy: %v", err)
			}
			if got := digest.FromBytes(sink.buf.Bytes()); got != img.layer.Digest {
				t.Errorf("blob digest = %s, want %s", got, img.layer.Digest)
			}

			got := proxy.connects()
			if len(got) == 0 || slices.ContainsFunc(got, func(s string) bool {
				return s != host
			}) {
				t.Errorf("proxy saw CONNECT %q, want only %s", got, host)
			}
			if n := reg.Requests("GET manifest"); n != 1 {
				t.Errorf("registry served %d manifest GETs through the tunnel, want 1", n)
			}
		})
	}
}

// checkUnresolved asserts err is the failure of dialling host directly: unreachable,
// naming the endpoint and the name lookup that failed.
func checkUnresolved(t testing.TB, err error, ref, host string) {
	t.Helper()

	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("error = %v, want ErrUnreachable", err)
	}
	for _, part := range []string{"fetch manifest " + ref + " from https://" + host,
		"lookup " + proxiedName} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not contain %q", err, part)
		}
	}
}

func TestTLSClientCertificates(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	img := pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 100)
	pki := newTestPKI(t, "dls mTLS test CA")
	serverCert := pki.issue(t, "127.0.0.1", x509.ExtKeyUsageServerAuth, "127.0.0.1")
	certFile, keyFile := writeKeyPair(t,
		pki.issue(t, "dls test client", x509.ExtKeyUsageClientAuth))
	mtls := startTLSFrontWith(t, reg, &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pki.pool(),
	})
	// The plain TLS front's certificate comes from a CA the client is never told about.
	unknown := newTestPKI(t, "dls unknown CA")
	plain := startTLSFrontWith(t, reg, &tls.Config{Certificates: []tls.Certificate{
		unknown.issue(t, "127.0.0.1", x509.ExtKeyUsageServerAuth, "127.0.0.1"),
	}})

	tests := []struct {
		name        string
		front       *tlsFront
		tls         string   // the lines under configs.<host>.tls
		wantClients []string // client certificate names the front saw; nil on failure
		wantErr     []string // parts of the error; nil for success
	}{
		{"client certificate with cert_file, key_file and ca_file", mtls,
			"ca_file: " + pki.caFile + "\ncert_file: " + certFile + "\nkey_file: " + keyFile,
			[]string{"dls test client", "dls test client"}, nil},
		{"insecure_skip_verify still presents the client certificate", mtls,
			"insecure_skip_verify: true\ncert_file: " + certFile + "\nkey_file: " + keyFile,
			[]string{"dls test client", "dls test client"}, nil},
		{"ca_file without a client certificate is refused", mtls,
			"ca_file: " + pki.caFile, nil,
			[]string{"from https://" + mtls.host + ":", "tls: certificate required"}},
		{"insecure_skip_verify trusts a certificate from an unknown CA", plain,
			"insecure_skip_verify: true", []string{"", ""}, nil},
		{"without insecure_skip_verify or ca_file the certificate is refused", plain,
			"insecure_skip_verify: false", nil,
			[]string{"from https://" + plain.host + ": verify TLS certificate: ",
				"certificate signed by unknown authority",
				"set configs." + plain.host + ".tls.ca_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg.ResetCounts()
			before := len(tt.front.clientNames())
			yaml := "configs:\n  \"" + tt.front.host + "\":\n    tls:\n      " +
				strings.ReplaceAll(tt.tls, "\n", "\n      ") + "\n"
			cfg, err := LoadRegistriesConfig(writeFile(t, "registries.yaml", yaml))
			if err != nil {
				t.Fatalf("LoadRegistriesConfig: %v", err)
			}
			c := testClient(t, Options{RetryMax: 1, Config: cfg})

			m, err := c.Resolve(context.Background(), mustRef(t, tt.front.host+"/a/b:1"))
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Resolve succeeded, want an error containing %q", tt.wantErr)
				}
				for _, part := range tt.wantErr {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not contain %q", err, part)
					}
				}
			} else if err != nil {
				t.Fatalf("Resolve: %v", err)
			} else if m.Descriptor.Digest != img.manifestDigest {
				t.Errorf("digest = %s, want %s", m.Descriptor.Digest, img.manifestDigest)
			}

			// One name per request that got past the handshake: the ping and the manifest.
			got := tt.front.clientNames()[before:]
			if !slices.Equal(got, tt.wantClients) {
				t.Errorf("client certificates seen = %q, want %q", got, tt.wantClients)
			}
			wantGETs := 1
			if tt.wantErr != nil {
				wantGETs = 0
			}
			if n := reg.Requests("GET manifest"); n != wantGETs {
				t.Errorf("registry served %d manifest GETs, want %d", n, wantGETs)
			}
		})
	}
}

func TestTLSClientCertificateConfigErrors(t *testing.T) {
	pki := newTestPKI(t, "dls config test CA")
	certFile, keyFile := writeKeyPair(t,
		pki.issue(t, "dls test client", x509.ExtKeyUsageClientAuth))
	const host = "registry.example.com:5000"

	tests := []struct {
		name string
		tls  TLSConfig
		want string
	}{
		{"cert_file without key_file", TLSConfig{CertFile: certFile},
			`configs "` + host + `": cert_file and key_file must be given together`},
		{"key_file without cert_file", TLSConfig{KeyFile: keyFile},
			`configs "` + host + `": cert_file and key_file must be given together`},
		{"key_file that is no key", TLSConfig{CertFile: certFile, KeyFile: pki.caFile},
			`configs "` + host + `": load client certificate: `},
		{"ca_file that is no certificate", TLSConfig{CAFile: keyFile},
			`configs "` + host + `": read ca_file ` + keyFile + `: no PEM certificate`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(Options{Config: &RegistriesConfig{
				Configs: map[string]HostConfig{host: {TLS: &tt.tls}},
			}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewClient error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// callLog records, across several servers, which one was asked what, in arrival order.
type callLog struct {
	mu      sync.Mutex
	on      bool
	entries []string
}

// add appends one entry, once recording has started.
func (l *callLog) add(entry string) {
	l.mu.Lock()
	defer l.mu.Unlock()

	if l.on {
		l.entries = append(l.entries, entry)
	}
}

// start begins recording, so the pushes that set a test up are left out.
func (l *callLog) start() {
	l.mu.Lock()
	defer l.mu.Unlock()

	l.on = true
}

// take returns the entries so far and starts a new list.
func (l *callLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()

	out := l.entries
	l.entries = nil
	return out
}

// wrap is a registrytest.Options.Wrap function logging "label METHOD path".
func (l *callLog) wrap(label string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			l.add(label + " " + r.Method + " " + r.URL.Path)
			next.ServeHTTP(w, r)
		})
	}
}

// startHangUp listens on loopback, logs "label accept" for each connection and closes it
// at once: a dead mirror that takes connections and never answers a request.
func startHangUp(t testing.TB, log *callLog, label string) string {
	t.Helper()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			log.add(label + " accept")
			_ = conn.Close()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	return l.Addr().String()
}

func TestMirrorsTriedInOrderThenOrigin(t *testing.T) {
	calls := &callLog{}
	origin := registrytest.Start(t, registrytest.Options{Wrap: calls.wrap("origin")})
	img := pushImage(t, origin, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 500)
	empty := registrytest.Start(t, registrytest.Options{Wrap: calls.wrap("empty")})
	dead := startHangUp(t, calls, "dead")
	calls.start()

	c := testClient(t, Options{RetryMax: 1, Config: &RegistriesConfig{
		Mirrors: map[string]Mirror{origin.Host: {
			Endpoints: []string{"http://" + dead, empty.URL},
		}},
	}})
	name := origin.Host + "/a/b:1"
	ref := mustRef(t, name)
	manifestPath := "/v2/a/b/manifests/1"
	blobPath := "/v2/a/b/blobs/" + img.layer.Digest.String()

	m, err := c.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if m.Descriptor.Digest != img.manifestDigest {
		t.Errorf("digest = %s, want %s", m.Descriptor.Digest, img.manifestDigest)
	}
	// The dead mirror's ping has one retry (mirrorPingRetries), so two connections; the
	// origin is a loopback registry, found to speak plain http after an https attempt
	// that never reaches its handler.
	wantResolve := []string{
		"dead accept", "dead accept",
		"empty GET /v2/", "empty GET " + manifestPath,
		"origin GET /v2/", "origin GET " + manifestPath,
	}
	if got := calls.take(); !slices.Equal(got, wantResolve) {
		t.Errorf("Resolve asked, in order:\n%s\nwant\n%s", strings.Join(got, "\n"),
			strings.Join(wantResolve, "\n"))
	}

	sink := &memSink{}
	if _, err := c.FetchBlob(context.Background(), ref, img.layer, sink); err != nil {
		t.Fatalf("FetchBlob: %v", err)
	}
	if got := digest.FromBytes(sink.buf.Bytes()); got != img.layer.Digest {
		t.Errorf("blob digest = %s, want %s", got, img.layer.Digest)
	}
	// The dead mirror is now marked down and skipped; the others are pinged already.
	wantBlob := []string{"empty GET " + blobPath, "origin GET " + blobPath}
	if got := calls.take(); !slices.Equal(got, wantBlob) {
		t.Errorf("FetchBlob asked, in order: %q, want %q", got, wantBlob)
	}

	if ref.String() != name {
		t.Errorf("reference changed to %s, want the original %s", ref, name)
	}
}

func TestRetryStatuses(t *testing.T) {
	tests := []struct {
		status   int
		retried  bool
		wantErr  string // for a status not retried: the end of the error's first line
		wantKind error  // for a status not retried: what errors.Is finds, or nil
	}{
		{http.StatusRequestTimeout, true, "", nil},
		{http.StatusTooManyRequests, true, "", nil},
		{http.StatusInternalServerError, true, "", nil},
		{http.StatusBadGateway, true, "", nil},
		{http.StatusServiceUnavailable, true, "", nil},
		{http.StatusGatewayTimeout, true, "", nil},
		{http.StatusNotImplemented, false, ": unexpected status 501 Not Implemented", nil},
		{http.StatusBadRequest, false, ": unexpected status 400 Bad Request", nil},
		{http.StatusNotFound, false, ": not found", ErrNotFound},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%d %s", tt.status, http.StatusText(tt.status))
		if tt.retried {
			name += " is retried"
		} else {
			name += " is not retried"
		}
		t.Run(name, func(t *testing.T) {
			bc := startBlobCase(t, answerFirst(1, tt.status, nil))
			c := testClient(t, Options{RetryMax: 2})
			sink := &memSink{}

			st, err := bc.fetch(t, c, sink)
			gets := bc.faults.rangesSeen()
			if !tt.retried {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if tt.wantKind != nil && !errors.Is(err, tt.wantKind) {
					t.Errorf("errors.Is(%v, %v) = false", err, tt.wantKind)
				}
				if len(gets) != 1 || st.Retries != 0 {
					t.Errorf("blob GETs = %q, retries = %d; want 1 GET, 0 retries", gets,
						st.Retries)
				}
				return
			}
			if err != nil {
				t.Fatalf("FetchBlob: %v", err)
			}
			bc.checkBlob(t, sink)
			if !slices.Equal(gets, []string{"", ""}) || st.Retries != 1 {
				t.Errorf("blob GETs = %q, retries = %d; want 2 whole-blob GETs, 1 retry",
					gets, st.Retries)
			}
		})
	}
}
