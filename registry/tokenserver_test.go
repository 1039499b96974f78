package registry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"

	// The token access controller registers itself with distribution's auth factory.
	_ "github.com/distribution/distribution/v3/registry/auth/token"
)

const (
	tokenIssuer  = "dls-test-issuer"
	tokenService = "dls-test-registry"
)

// tokenServer is the test's own token endpoint for a distribution registry configured
// with token auth: it signs ES256 JWTs with a certificate it generated, and records the
// scopes and logins it was asked for. distribution has no token server of its own.
type tokenServer struct {
	*httptest.Server
	key      *ecdsa.PrivateKey
	certDER  []byte
	certPath string

	// user and pass, when set, are required as Basic credentials.
	user, pass string
	// expiredFirst makes the first token one the registry refuses as expired, while
	// telling the client it lives for five minutes.
	expiredFirst bool
	// emptyFirst makes the first token grant nothing (insufficient_scope at the registry).
	emptyFirst bool

	mu     sync.Mutex
	scopes []string // one entry per request, the scope parameters joined by " "
	logins []string // one entry per request: the Basic user, or "" for anonymous
}

// startTokenServer starts a token server and writes its certificate for the registry.
func startTokenServer(t testing.TB) *tokenServer {
	t.Helper()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate token key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: tokenIssuer},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("create token certificate: %v", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})

	ts := &tokenServer{key: key, certDER: der,
		certPath: writeFile(t, "token-root.pem", string(pemBytes))}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	return ts
}

// auth is the registrytest auth section that trusts this token server.
func (ts *tokenServer) auth() configuration.Auth {
	return configuration.Auth{"token": configuration.Parameters{
		"realm":          ts.URL + "/token",
		"service":        tokenService,
		"issuer":         tokenIssuer,
		"rootcertbundle": ts.certPath,
	}}
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	user, pass, hasLogin := r.BasicAuth()
	scopes := r.URL.Query()["scope"]

	ts.mu.Lock()
	first := len(ts.scopes) == 0
	ts.scopes = append(ts.scopes, strings.Join(scopes, " "))
	ts.logins = append(ts.logins, user)
	ts.mu.Unlock()

	if ts.user != "" && (!hasLogin || user != ts.user || pass != ts.pass) {
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad login"}]}`,
			http.StatusUnauthorized)
		return
	}

	exp := time.Now().Add(5 * time.Minute)
	if first && ts.expiredFirst {
		exp = time.Now().Add(-5 * time.Minute) // beyond distribution's 60s leeway
	}
	if first && ts.emptyFirst {
		scopes = nil
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token": ts.sign(scopes, exp), "expires_in": 300,
	})
}

// sign returns a JWT granting the actions of each "repository:name:actions" scope.
func (ts *tokenServer) sign(scopes []string, exp time.Time) string {
	access := []map[string]any{}
	for _, s := range scopes {
		parts := strings.Split(s, ":")
		if len(parts) != 3 {
			continue
		}
		access = append(access, map[string]any{
			"type": parts[0], "name": parts[1], "actions": strings.Split(parts[2], ","),
		})
	}
	now := time.Now()
	claims := map[string]any{
		"iss": tokenIssuer, "sub": "dls", "aud": tokenService, "exp": exp.Unix(),
		"nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(), "jti": now.String(),
		"access": access,
	}
	header := map[string]any{"alg": "ES256", "typ": "JWT",
		"x5c": []string{base64.StdEncoding.EncodeToString(ts.certDER)}}

	enc := base64.RawURLEncoding
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	signing := enc.EncodeToString(hb) + "." + enc.EncodeToString(cb)

	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		panic("sign test token: " + err.Error()) // crypto/rand failing: nothing to test
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig)
}

// requests returns the recorded scopes and logins.
func (ts *tokenServer) requests() (scopes, logins []string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()

	return append([]string(nil), ts.scopes...), append([]string(nil), ts.logins...)
}
