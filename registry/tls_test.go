package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

// newTestCA creates a CA and a server certificate it signs for 127.0.0.1, and returns
// the server's TLS config and the path of the CA certificate in PEM.
func newTestCA(t testing.TB) (*tls.Config, string) {
	t.Helper()

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate CA key: %v", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dls test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create CA certificate: %v", err)
	}
	caCert, _ := x509.ParseCertificate(caDER)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate server key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create server certificate: %v", err)
	}

	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der},
		PrivateKey: key}}}
	return cfg, writeFile(t, "ca.pem", string(caPEM))
}

// startTLSFront serves reg over HTTPS with a certificate from a CA the test made, and
// returns the HTTPS base URL and the CA file.
func startTLSFront(t testing.TB, reg *registrytest.Registry) (string, string) {
	t.Helper()

	cfg, caFile := newTestCA(t)
	return serveTLSFront(t, reg, cfg, false).url, caFile
}

func TestTLSMirrorWithCAFile(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	img := pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 3000)
	httpsURL, caFile := startTLSFront(t, reg)
	host := strings.TrimPrefix(httpsURL, "https://")
	// The image's own registry is down, so only the TLS mirror can serve it.
	origin := registrytest.Unreachable(t)
	mirrors := map[string]Mirror{origin: {Endpoints: []string{httpsURL}}}
	ref := origin + "/a/b:1"

	t.Run("ca_file trusts the registry", func(t *testing.T) {
		path := writeFile(t, "registries.yaml", "mirrors:\n  \""+origin+"\":\n"+
			"    endpoint: [\""+httpsURL+"\"]\nconfigs:\n  \""+host+"\":\n"+
			"    tls:\n      ca_file: "+caFile+"\n")
		cfg, err := LoadRegistriesConfig(path)
		if err != nil {
			t.Fatalf("LoadRegistriesConfig: %v", err)
		}
		c := testClient(t, Options{Config: cfg})

		m, err := c.Resolve(context.Background(), mustRef(t, ref))
		if err != nil {
			t.Fatalf("Resolve: %v", err)
		}
		if m.Descriptor.Digest != img.manifestDigest {
			t.Errorf("digest = %s, want %s", m.Descriptor.Digest, img.manifestDigest)
		}
	})

	t.Run("without ca_file the certificate is refused", func(t *testing.T) {
		c := testClient(t, Options{RetryMax: 1, Config: &RegistriesConfig{Mirrors: mirrors}})

		_, err := c.Resolve(context.Background(), mustRef(t, ref))
		var errs endpointErrors
		if !errors.As(err, &errs) || len(errs) != 2 {
			t.Fatalf("error = %v, want one error per endpoint", err)
		}
		want := "fetch manifest " + ref + " from " + httpsURL + ": verify TLS certificate: "
		hint := "set configs." + host + ".tls.ca_file in registries.yaml"
		if got := errs[0].Error(); !strings.HasPrefix(got, want) ||
			!strings.Contains(got, hint) {
			t.Errorf("mirror error = %q, want %q… with the hint %q", got, want, hint)
		}
		if errors.Is(errs[0], ErrUnreachable) {
			t.Errorf("a certificate error is reported as unreachable: %v", errs[0])
		}
	})
}

func TestLoopbackRegistryOverTLS(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	img := pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 3000)
	httpsURL, caFile := startTLSFront(t, reg)
	host := strings.TrimPrefix(httpsURL, "https://")
	withCA := &RegistriesConfig{Configs: map[string]HostConfig{
		host: {TLS: &TLSConfig{CAFile: caFile}},
	}}
	plainMirror := &RegistriesConfig{Mirrors: map[string]Mirror{
		"docker.io": {Endpoints: []string{reg.Host}},
	}}

	tests := []struct {
		name    string
		ref     string
		cfg     *RegistriesConfig
		wantErr string // "" for success
	}{
		{"registry with ca_file is reached over https", host + "/a/b:1", withCA, ""},
		{"registry without ca_file fails on the certificate, not over http",
			host + "/a/b:1", nil, "set configs." + host + ".tls.ca_file in registries.yaml"},
		{"mirror without a scheme and with ca_file uses https", "docker.io/a/b:1",
			&RegistriesConfig{Configs: withCA.Configs, Mirrors: map[string]Mirror{
				"docker.io": {Endpoints: []string{host}},
			}}, ""},
		{"mirror without a scheme falls back to plain http", "docker.io/a/b:1",
			plainMirror, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg.ResetCounts()
			c := testClient(t, Options{RetryMax: 1, Config: tt.cfg})

			m, err := c.Resolve(context.Background(), mustRef(t, tt.ref))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if n := reg.Requests("GET manifest"); n != 0 {
					t.Errorf("registry served %d manifest GETs, want 0", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if m.Descriptor.Digest != img.manifestDigest {
				t.Errorf("digest = %s, want %s", m.Descriptor.Digest, img.manifestDigest)
			}
			if n := reg.Requests("GET manifest"); n != 1 {
				t.Errorf("registry served %d manifest GETs, want 1", n)
			}
		})
	}
}
