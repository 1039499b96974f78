package registry

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

func TestTokenAuthFlow(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(ts *tokenServer)
		login      bool
		wantScopes []string
		wantLogins []string
	}{
		{name: "anonymous token, cached for manifest and blob",
			wantScopes: []string{"repository:a/b:pull"}, wantLogins: []string{""}},
		{name: "basic login at the token server from registries.yaml",
			setup: func(ts *tokenServer) { ts.user, ts.pass = "alice", "s3cret" },
			login: true, wantScopes: []string{"repository:a/b:pull"},
			wantLogins: []string{"alice"}},
		{name: "expired token is renewed after a 401",
			setup:      func(ts *tokenServer) { ts.expiredFirst = true },
			wantScopes: []string{"repository:a/b:pull", "repository:a/b:pull"},
			wantLogins: []string{"", ""}},
		{name: "insufficient scope asks again for the named scope",
			setup:      func(ts *tokenServer) { ts.emptyFirst = true },
			wantScopes: []string{"repository:a/b:pull", "repository:a/b:pull"},
			wantLogins: []string{"", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startTokenServer(t)
			if tt.setup != nil {
				tt.setup(ts)
			}
			reg, img := startTokenRegistry(t, ts)
			cfg := &RegistriesConfig{}
			if tt.login {
				cfg.Configs = map[string]HostConfig{reg.Host: {
					Auth: &AuthConfig{Username: "alice", Password: "s3cret"}}}
			}
			c := testClient(t, Options{Config: cfg})
			ref := mustRef(t, reg.Host+"/a/b:1")

			m, err := c.Resolve(context.Background(), ref)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if m.Descriptor.Digest != img.manifestDigest {
				t.Errorf("digest = %s, want %s", m.Descriptor.Digest, img.manifestDigest)
			}
			sink := &memSink{}
			if _, err := c.FetchBlob(context.Background(), ref, img.layer, sink); err != nil {
				t.Fatalf("FetchBlob: %v", err)
			}
			if sink.buf.String() != string(img.layerBytes) {
				t.Errorf("blob bytes differ from the pushed layer")
			}

			scopes, logins := ts.requests()
			if strings.Join(scopes, "|") != strings.Join(tt.wantScopes, "|") {
				t.Errorf("token scopes = %q, want %q", scopes, tt.wantScopes)
			}
			if strings.Join(logins, "|") != strings.Join(tt.wantLogins, "|") {
				t.Errorf("token logins = %q, want %q", logins, tt.wantLogins)
			}
		})
	}
}

func TestTokenAuthBadLogin(t *testing.T) {
	ts := startTokenServer(t)
	ts.user, ts.pass = "alice", "s3cret"
	reg, _ := startTokenRegistry(t, ts)
	c := testClient(t, Options{})

	_, err := c.Resolve(context.Background(), mustRef(t, reg.Host+"/a/b:1"))
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("error = %v, want ErrUnauthorized", err)
	}
	want := "get token for repository:a/b:pull from " + ts.URL + "/token: unauthorized: " +
		"401 Unauthorized"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

// startTokenRegistry starts a registry that requires tokens from ts, with one image in
// a/b:1. registrytest pushes without credentials, so the wrapper adds a push token the
// test signs itself to every write request; GETs reach the registry as the client sent them.
// An inner wrapper, when given, sees requests after the push token is added.
func startTokenRegistry(t testing.TB, ts *tokenServer,
	inner ...func(http.Handler) http.Handler) (*registrytest.Registry, testImage) {
	t.Helper()

	pushToken := ts.sign([]string{"repository:a/b:pull,push"}, time.Now().Add(time.Hour))
	reg := registrytest.Start(t, registrytest.Options{
		Auth: ts.auth(),
		Wrap: func(h http.Handler) http.Handler {
			for _, w := range inner {
				h = w(h)
			}
			return withPushToken(pushToken)(h)
		},
	})
	img := pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 5000)
	return reg, img
}

// withPushToken adds a bearer token to write requests that carry none.
func withPushToken(token string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead &&
				r.Header.Get("Authorization") == "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			next.ServeHTTP(w, r)
		})
	}
}
