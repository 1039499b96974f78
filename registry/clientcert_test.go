package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

// countingListener counts the TCP connections a server accepts: each is one attempt of
// the client, whether or not its TLS handshake succeeds.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return conn, err
}

// startMTLSFront serves reg with a server certificate from pki, asking for client
// certificates signed by pki as auth says, up to TLS maxVersion, until the test ends.
func startMTLSFront(t testing.TB, reg *registrytest.Registry, pki *testPKI,
	auth tls.ClientAuthType, maxVersion uint16, h2 bool) *tlsFront {
	t.Helper()

	return serveTLSFront(t, reg, &tls.Config{
		Certificates: []tls.Certificate{
			pki.issue(t, "127.0.0.1", x509.ExtKeyUsageServerAuth, "127.0.0.1"),
		},
		ClientAuth: auth,
		ClientCAs:  pki.pool(),
		MaxVersion: maxVersion,
	}, h2)
}

// TestClientCertificateRequired runs a registry behind a TLS server that demands a client
// certificate (tls.RequireAndVerifyClientCert, CA made by the test), over TLS 1.3, where
// the server sends certificate_required, and TLS 1.2, where it sends handshake_failure
// after its CertificateRequest, each with HTTP/1.1 and HTTP/2. Without cert_file dls must
// give up after one connection with the registries.yaml hint, as ErrUnauthorized, not
// mark the endpoint down (a second Resolve connects once more and fails the same way),
// and with cert_file it must present the certificate over that same server.
func TestClientCertificateRequired(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	img := pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 100)
	pki := newTestPKI(t, "dls client-cert test CA")
	certFile, keyFile := writeKeyPair(t,
		pki.issue(t, "dls test client", x509.ExtKeyUsageClientAuth))

	tls13Closed := []string{"remote error: " + alertCertificateRequired, h2NotEstablished,
		"write: broken pipe", "write: connection reset by peer",
		"read: connection reset by peer", "EOF"}
	variants := []struct {
		name       string
		maxVersion uint16
		h2         bool
		proto      string // what the request with a certificate negotiates
		// causes are the errors the refusal may end with: the server's alert, or, with
		// TLS 1.3, where the alert comes after the client's handshake, whichever of the
		// alert and the closed connection reaches the request first.
		causes []string
	}{
		{"TLS 1.3 HTTP/1.1", tls.VersionTLS13, false, "HTTP/1.1 TLS 1.3", tls13Closed},
		{"TLS 1.3 HTTP/2", tls.VersionTLS13, true, "HTTP/2.0 TLS 1.3", tls13Closed},
		{"TLS 1.2 HTTP/1.1", tls.VersionTLS12, false, "HTTP/1.1 TLS 1.2",
			[]string{"remote error: " + alertHandshakeFailure}},
		{"TLS 1.2 HTTP/2", tls.VersionTLS12, true, "HTTP/2.0 TLS 1.2",
			[]string{"remote error: " + alertHandshakeFailure}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			front := startMTLSFront(t, reg, pki, tls.RequireAndVerifyClientCert,
				v.maxVersion, v.h2)
			ref := front.host + "/a/b:1"

			t.Run("without cert_file it fails at once with the hint", func(t *testing.T) {
				logger, logs := capturingLogger(t)
				c := testClient(t, Options{RetryMax: 3, Logger: logger,
					Config: mtlsConfig(t, front.host, "ca_file: "+pki.caFile)})

				for round := 1; round <= 2; round++ {
					before := front.conns.accepted.Load()
					_, err := c.Resolve(context.Background(), mustRef(t, ref))
					checkClientCertError(t, err, front.host, v.causes)
					// net/http itself may dial once more when a new HTTP/2 connection
					// fails before the request went out; dls's own retries, the point
					// here, are counted by Stats and the log below.
					if n := front.conns.accepted.Load() - before; n < 1 || n > 2 {
						t.Errorf("Resolve %d: server accepted %d connections, want 1 (2 at "+
							"most with net/http's own redial)", round, n)
					}
				}
				want := []HostStats{{Host: front.host, Requests: 2}}
				if got := c.Stats(); !slices.Equal(got, want) {
					t.Errorf("Stats = %+v, want %+v (two Resolves, no retry)", got, want)
				}
				if n := front.servedCount(); n != 0 {
					t.Errorf("%d requests got past the handshake, want 0", n)
				}
				for _, line := range logs.lines() {
					if strings.Contains(line, "retry request") ||
						strings.Contains(line, "cannot be reached") {
						t.Errorf("log line %q: want no retry and no endpoint marked down",
							line)
					}
				}
			})

			t.Run("with cert_file the certificate is presented", func(t *testing.T) {
				before := front.servedCount()
				c := testClient(t, Options{RetryMax: 3, Config: mtlsConfig(t, front.host,
					"ca_file: "+pki.caFile+"\ncert_file: "+certFile+"\nkey_file: "+keyFile)})

				m, err := c.Resolve(context.Background(), mustRef(t, ref))
				if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				if m.Descriptor.Digest != img.manifestDigest {
					t.Errorf("digest = %s, want %s", m.Descriptor.Digest, img.manifestDigest)
				}
				// The ping and the manifest GET.
				want := []string{v.proto + " dls test client", v.proto + " dls test client"}
				if got := front.servedSince(before); !slices.Equal(got, want) {
					t.Errorf("requests served = %q, want %q", got, want)
				}
			})
		})
	}
}

// TestClientCertificateOptional checks that a server which asks for a client certificate
// but does not require one (tls.VerifyClientCertIfGiven) is still served without one:
// being asked is not by itself a failure, over either TLS version.
func TestClientCertificateOptional(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	img := pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 100)
	pki := newTestPKI(t, "dls optional client-cert test CA")

	for _, v := range []struct {
		maxVersion uint16
		proto      string
	}{{tls.VersionTLS13, "HTTP/1.1 TLS 1.3 -"}, {tls.VersionTLS12, "HTTP/1.1 TLS 1.2 -"}} {
		t.Run(tls.VersionName(v.maxVersion), func(t *testing.T) {
			front := startMTLSFront(t, reg, pki, tls.VerifyClientCertIfGiven, v.maxVersion,
				false)
			c := testClient(t, Options{RetryMax: 3,
				Config: mtlsConfig(t, front.host, "ca_file: "+pki.caFile)})

			m, err := c.Resolve(context.Background(), mustRef(t, front.host+"/a/b:1"))
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if m.Descriptor.Digest != img.manifestDigest {
				t.Errorf("digest = %s, want %s", m.Descriptor.Digest, img.manifestDigest)
			}
			if got, want := front.servedSince(0), []string{v.proto, v.proto}; !slices.Equal(
				got, want) {
				t.Errorf("requests served = %q, want %q", got, want)
			}
			if n := front.conns.accepted.Load(); n != 1 {
				t.Errorf("server accepted %d connections, want 1 (reused)", n)
			}
		})
	}
}

// TestIsClientCertMissing pins the classification on errors built as crypto/tls and
// net/http build them. It is a table of fakes because the servers above cannot send some
// rows on demand (a TLS 1.2 bad_certificate alert, as some servers send instead of
// handshake_failure; each way a TLS 1.3 refusal races the request) and must not be
// taken for a refusal in others (the same faults when no certificate was asked for,
// which must stay retryable).
func TestIsClientCertMissing(t *testing.T) {
	remote := func(a uint8) error {
		return &url.Error{Op: "Get", URL: "https://reg.example:5000/v2/",
			Err: &net.OpError{Op: "remote error", Err: tls.AlertError(a)}}
	}
	reset := &url.Error{Op: "Get", URL: "https://reg.example:5000/v2/", Err: &net.OpError{
		Op: "write", Err: os.NewSyscallError("write", syscall.ECONNRESET)}}
	asked := withCertProbe(context.Background())
	probe, _ := asked.Value(certProbeKey{}).(*certProbe)
	probe.askedNone.Store(true)
	notAsked := withCertProbe(context.Background())

	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"certificate_required, whatever was asked", context.Background(), remote(116), true},
		{"handshake_failure after a certificate request", asked, remote(40), true},
		{"bad_certificate after a certificate request", asked, remote(42), true},
		{"handshake_failure without a certificate request", notAsked, remote(40), false},
		{"handshake_failure without a probe", context.Background(), remote(40), false},
		{"protocol_version after a certificate request", asked, remote(70), false},
		{"new HTTP/2 connection closed after a certificate request", asked, &url.Error{
			Op: "Get", URL: "https://reg.example:5000/v2/", Err: errors.New(h2NotEstablished)},
			true},
		{"new HTTP/2 connection closed without a certificate request", notAsked,
			&url.Error{Op: "Get", URL: "https://reg.example:5000/v2/",
				Err: errors.New(h2NotEstablished)}, false},
		{"connection reset after a certificate request", asked, reset, true},
		{"connection reset without a certificate request", notAsked, reset, false},
		{"EOF after a certificate request", asked, &url.Error{Op: "Get",
			URL: "https://reg.example:5000/v2/", Err: io.EOF}, true},
		{"refused connection after a certificate request", asked, &url.Error{Op: "Get",
			URL: "https://reg.example:5000/v2/", Err: &net.OpError{Op: "dial",
				Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isClientCertMissing(tt.ctx, tt.err); got != tt.want {
				t.Errorf("isClientCertMissing(%v) = %t, want %t", tt.err, got, tt.want)
			}
		})
	}

	got := clientCertError(remote(116)).Error()
	want := `present TLS client certificate: Get https://reg.example:5000/v2/: remote ` +
		`error: tls: certificate required: reg.example:5000 asked for one and none was ` +
		`sent (set configs."reg.example:5000".tls.cert_file and key_file in registries.yaml)`
	if got != want {
		t.Errorf("clientCertError = %q, want %q", got, want)
	}
}

// mtlsConfig loads a registries.yaml whose configs entry for host has the given tls lines.
func mtlsConfig(t testing.TB, host, tlsLines string) *RegistriesConfig {
	t.Helper()

	yaml := "configs:\n  \"" + host + "\":\n    tls:\n      " +
		strings.ReplaceAll(tlsLines, "\n", "\n      ") + "\n"
	cfg, err := LoadRegistriesConfig(writeFile(t, "registries.yaml", yaml))
	if err != nil {
		t.Fatalf("LoadRegistriesConfig: %v", err)
	}
	return cfg
}

// checkClientCertError asserts the error of a Resolve refused for want of a client
// certificate: the endpoint, one of the causes, the hint, and its kind.
func checkClientCertError(t testing.TB, err error, host string, causes []string) {
	t.Helper()

	if err == nil {
		t.Fatal("Resolve succeeded, want a client certificate error")
	}
	msg := err.Error()
	prefix := "fetch manifest " + host + "/a/b:1 from https://" + host + ": " +
		"present TLS client certificate: Get https://" + host + "/v2/: "
	suffix := ": " + host + ` asked for one and none was sent (set configs."` + host +
		`".tls.cert_file and key_file in registries.yaml)`
	if !strings.HasPrefix(msg, prefix) || !slices.ContainsFunc(causes, func(c string) bool {
		return strings.HasSuffix(msg, c+suffix)
	}) {
		t.Errorf("error %q, want %q…, one of %q, then %q", msg, prefix, causes, suffix)
	}
	if strings.Contains(msg, "marked down") || strings.Contains(msg, "attempt") {
		t.Errorf("error %q reads as an unreachable endpoint", msg)
	}
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("error %q is not ErrUnauthorized", msg)
	}
	if errors.Is(err, ErrUnreachable) {
		t.Errorf("error %q is ErrUnreachable", msg)
	}
}
