package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/dlsproject/dls/integration/registrytest"
)

// Logins of these tests. Every secret is distinct, so finding one in a log or an error
// message cannot be a coincidence with some other value.
const (
	htPusher, htPusherPass = "pusher", "pusher-pass-3c1e"
	htUser, htPass         = "alice", "htpasswd-pass-9d27"
	tokenUser, tokenPass   = "bob", "token-pass-51b8"
	wrongPass              = "wrong-pass-0e4d"
	refreshToken           = "refresh-token-a6f0"
)

// authSeen is one GET or HEAD a registry served: its path and Authorization header.
type authSeen struct{ path, auth string }

// authLog records the Authorization header of every GET and HEAD a registry serves, as the
// client sent it. Pushes (POST, PUT) are left out.
type authLog struct {
	mu   sync.Mutex
	seen []authSeen
}

func (l *authLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			l.mu.Lock()
			l.seen = append(l.seen, authSeen{path: r.URL.Path, auth: r.Header.Get("Authorization")})
			l.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// repo returns the Authorization headers of the requests for repo's manifests and blobs,
// in the order they arrived.
func (l *authLog) repo(name string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()

	var out []string
	for _, s := range l.seen {
		if strings.HasPrefix(s.path, "/v2/"+name+"/") {
			out = append(out, s.auth)
		}
	}
	return out
}

// basicUsers returns the user of each Basic Authorization header, "" for any other.
func basicUsers(headers []string) []string {
	out := make([]string, len(headers))
	for i, h := range headers {
		r := &http.Request{Header: http.Header{"Authorization": {h}}}
		out[i], _, _ = r.BasicAuth()
	}
	return out
}

// startHtpasswdRegistry starts a registry with distribution's htpasswd auth that knows
// htPusher (who pushes a/b:1) and htUser, and records the Authorization headers it gets.
func startHtpasswdRegistry(t testing.TB) (*registrytest.Registry, testImage, *authLog) {
	t.Helper()

	log := &authLog{}
	reg := registrytest.Start(t, registrytest.Options{
		Htpasswd: []registrytest.Login{
			{User: htPusher, Password: htPusherPass}, {User: htUser, Password: htPass},
		},
		Wrap: log.wrap,
	})
	img := pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 5000)
	return reg, img, log
}

// tokenFront is the realm a token registry names in these tests. It stands in front of a
// tokenServer, passing GETs through, and records every token handed out so tests can
// look for them. It can shorten the lifetime the answer states (expiresIn), and answers
// the OAuth2 refresh-token POST, which tokenServer does not speak, when the POST carries
// refreshToken.
type tokenFront struct {
	*httptest.Server
	ts *tokenServer
	// expiresIn, when set, replaces the expires_in of every answer (the JWT keeps its own
	// five-minute exp, so the registry would still accept a token past expiresIn).
	expiresIn int
	// refreshToken is the only refresh token a POST may carry; "" refuses every POST.
	refreshToken string

	mu     sync.Mutex
	issued []string     // every token handed out, in order
	posts  []url.Values // the form of every POST, in order
}

// startTokenFront starts a front for a new tokenServer.
func startTokenFront(t testing.TB) *tokenFront {
	t.Helper()

	f := &tokenFront{ts: startTokenServer(t)}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// auth is the registrytest auth section that names the front as realm and trusts the
// tokens its tokenServer signs.
func (f *tokenFront) auth() configuration.Auth {
	a := f.ts.auth()
	a["token"]["realm"] = f.URL + "/token"
	return a
}

func (f *tokenFront) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		f.refresh(w, r)
		return
	}

	rec := httptest.NewRecorder()
	f.ts.serve(rec, r)
	var body map[string]any
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}

	tok, _ := body["token"].(string)
	f.answer(w, body, tok)
}

// refresh answers the OAuth2 refresh_token grant for the scopes of the form.
func (f *tokenFront) refresh(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}

	f.mu.Lock()
	f.posts = append(f.posts, r.PostForm)
	f.mu.Unlock()

	if r.PostForm.Get("grant_type") != "refresh_token" || f.refreshToken == "" ||
		r.PostForm.Get("refresh_token") != f.refreshToken {
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusUnauthorized)
		return
	}

	var scopes []string
	for _, s := range r.PostForm["scope"] {
		scopes = append(scopes, strings.Fields(s)...)
	}
	tok := f.ts.sign(scopes, time.Now().Add(5*time.Minute))
	f.answer(w, map[string]any{"access_token": tok, "expires_in": 300}, tok)
}

// answer records tok and writes body, with expiresIn when set.
func (f *tokenFront) answer(w http.ResponseWriter, body map[string]any, tok string) {
	f.mu.Lock()
	f.issued = append(f.issued, tok)
	f.mu.Unlock()

	if f.expiresIn > 0 {
		body["expires_in"] = f.expiresIn
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// tokens returns every token handed out so far.
func (f *tokenFront) tokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()

	return slices.Clone(f.issued)
}

// forms returns the form of every POST so far.
func (f *tokenFront) forms() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()

	return slices.Clone(f.posts)
}

// startFrontRegistry starts a registry that requires tokens from f, with image <repo>:1
// in each of repos, and records the Authorization headers the client sends. Pushes carry
// a token the test signs itself for all repos.
func startFrontRegistry(t testing.TB, f *tokenFront,
	repos ...string) (*registrytest.Registry, map[string]testImage, *authLog) {
	t.Helper()

	var scopes []string
	for _, repo := range repos {
		scopes = append(scopes, "repository:"+repo+":pull,push")
	}
	push := withPushToken(f.ts.sign(scopes, time.Now().Add(time.Hour)))
	log := &authLog{}
	reg := registrytest.Start(t, registrytest.Options{
		Auth: f.auth(),
		Wrap: func(h http.Handler) http.Handler { return log.wrap(push(h)) },
	})

	imgs := map[string]testImage{}
	for i, repo := range repos {
		imgs[repo] = pushImage(t, reg, repo, "1", ocispec.MediaTypeImageManifest,
			testSeed+uint64(i), 5000)
	}
	return reg, imgs, log
}

// pull resolves ref and fetches img's layer from it, and checks the manifest digest and
// the layer bytes. It may run on any goroutine.
func pull(t testing.TB, c *Client, ref reference.Named, img testImage) error {
	t.Helper()

	m, err := c.Resolve(context.Background(), ref)
	if err != nil {
		return err
	}
	if m.Descriptor.Digest != img.manifestDigest {
		t.Errorf("%s: digest = %s, want %s", ref, m.Descriptor.Digest, img.manifestDigest)
	}

	sink := &memSink{}
	if _, err := c.FetchBlob(context.Background(), ref, img.layer, sink); err != nil {
		return err
	}
	if !bytes.Equal(sink.buf.Bytes(), img.layerBytes) {
		t.Errorf("%s: layer bytes differ from the pushed layer", ref)
	}
	return nil
}

// registriesYAML writes a registries.yaml giving host the login auth (a YAML flow
// mapping such as "{username: u, password: p}") and loads it as dls does.
func registriesYAML(t testing.TB, host, auth string) *RegistriesConfig {
	t.Helper()

	path := writeFile(t, "registries.yaml", fmt.Sprintf("configs:\n  %q:\n    auth: %s\n",
		host, auth))
	cfg, err := LoadRegistriesConfig(path)
	if err != nil {
		t.Fatalf("LoadRegistriesConfig: %v", err)
	}
	return cfg
}

// useDockerConfig writes data as config.json into a new directory named by DOCKER_CONFIG.
func useDockerConfig(t testing.TB, data string) {
	t.Helper()

	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "config.json"), data)
	t.Setenv("DOCKER_CONFIG", dir)
}

// installCredHelper puts docker-credential-dlstest on PATH: a real helper process that
// answers `get` with user and secret (the Docker credential helper protocol) and appends
// "get <server URL>" to a file. It returns a function reading that file's lines.
func installCredHelper(t testing.TB, user, secret string) (asked func() []string) {
	t.Helper()

	dir := t.TempDir()
	askedPath := filepath.Join(dir, "asked")
	script := fmt.Sprintf(`#!/bin/sh
[ "$1" = get ] || exit 1
read -r server
printf 'get %%s\n' "$server" >> '%s'
printf '{"ServerURL":"%%s","Username":"%s","Secret":"%s"}\n' "$server"
`, askedPath, user, secret)
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-dlstest"), []byte(script),
		0o700); err != nil {
		t.Fatalf("write credential helper: %v", err)
	}

	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func() []string {
		data, err := os.ReadFile(askedPath)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			t.Fatalf("read what the credential helper was asked: %v", err)
		}
		return strings.Split(strings.TrimSpace(string(data)), "\n")
	}
}

// basic64 is base64 of "user:pass", as Docker's config.json auth and a Basic header hold it.
func basic64(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func TestHtpasswdRegistryCredentialSources(t *testing.T) {
	tests := []struct {
		name string
		// setup returns the client options for the registry at host.
		setup func(t *testing.T, host string) Options
		// helperAsked says the credential helper must have been asked, once, for host.
		helperAsked bool
	}{
		{name: "registries.yaml configs auth with username and password",
			setup: func(t *testing.T, host string) Options {
				return Options{Config: registriesYAML(t, host,
					"{username: "+htUser+", password: "+htPass+"}")}
			}},
		{name: "registries.yaml configs auth as base64 user:password",
			setup: func(t *testing.T, host string) Options {
				return Options{Config: registriesYAML(t, host,
					"{auth: "+basic64(htUser, htPass)+"}")}
			}},
		{name: "docker config.json auths in DOCKER_CONFIG",
			setup: func(t *testing.T, host string) Options {
				useDockerConfig(t, `{"auths":{"`+host+`":{"auth":"`+
					basic64(htUser, htPass)+`"}}}`)
				return Options{Keychain: DefaultKeychain()}
			}},
		{name: "docker config.json credHelpers entry wins over its auths entry",
			setup: func(t *testing.T, host string) Options {
				useDockerConfig(t, `{"auths":{"`+host+`":{"auth":"`+
					basic64(htUser, wrongPass)+`"}},"credHelpers":{"`+host+`":"dlstest"}}`)
				return Options{Keychain: DefaultKeychain()}
			}, helperAsked: true},
		{name: "docker config.json credsStore",
			setup: func(t *testing.T, host string) Options {
				useDockerConfig(t, `{"credsStore":"dlstest"}`)
				return Options{Keychain: DefaultKeychain()}
			}, helperAsked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateHome(t)
			asked := installCredHelper(t, htUser, htPass)
			reg, img, seen := startHtpasswdRegistry(t)
			c := testClient(t, tt.setup(t, reg.Host))

			if err := pull(t, c, mustRef(t, reg.Host+"/a/b:1"), img); err != nil {
				t.Fatalf("pull: %v", err)
			}

			// One manifest GET and one blob GET, each logged in as htUser at once.
			users := basicUsers(seen.repo("a/b"))
			if want := []string{htUser, htUser}; !slices.Equal(users, want) {
				t.Errorf("registry saw Basic users %q, want %q", users, want)
			}
			var wantAsked []string
			if tt.helperAsked {
				wantAsked = []string{"get " + reg.Host}
			}
			if got := asked(); !slices.Equal(got, wantAsked) {
				t.Errorf("credential helper was asked %q, want %q", got, wantAsked)
			}
		})
	}
}

func TestHtpasswdRegistryRefusal(t *testing.T) {
	tests := []struct {
		name      string
		config    func(host string) *RegistriesConfig
		wantUsers []string // Basic users of the manifest GETs (the second after the 401)
		wantHint  bool     // the message says how to give credentials
	}{
		{name: "no login anywhere", config: func(string) *RegistriesConfig { return nil },
			wantUsers: []string{"", ""}, wantHint: true},
		{name: "wrong password in registries.yaml",
			config: func(host string) *RegistriesConfig {
				return &RegistriesConfig{Configs: map[string]HostConfig{host: {
					Auth: &AuthConfig{Username: htUser, Password: wrongPass}}}}
			},
			wantUsers: []string{htUser, htUser}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateHome(t)
			reg, img, seen := startHtpasswdRegistry(t)
			c := testClient(t, Options{Config: tt.config(reg.Host), Keychain: DefaultKeychain()})

			err := pull(t, c, mustRef(t, reg.Host+"/a/b:1"), img)
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("error = %v, want ErrUnauthorized", err)
			}

			msg := err.Error()
			want := "fetch manifest " + reg.Host + "/a/b:1 from " + reg.URL + ": unauthorized: " +
				"401 Unauthorized"
			if !strings.HasPrefix(msg, want) {
				t.Errorf("error %q does not start with %q", msg, want)
			}
			hint := reg.Host + ` needs a login: add configs."` + reg.Host + `".auth to ` +
				"registries.yaml or log in with docker login or podman login"
			if strings.Contains(msg, hint) != tt.wantHint {
				t.Errorf("error %q: contains %q is %v, want %v", msg, hint, !tt.wantHint,
					tt.wantHint)
			}
			if users := basicUsers(seen.repo("a/b")); !slices.Equal(users, tt.wantUsers) {
				t.Errorf("registry saw Basic users %q, want %q", users, tt.wantUsers)
			}
			if n := reg.Requests("GET blob"); n != 0 {
				t.Errorf("registry served %d blob GETs after refusing the manifest", n)
			}
		})
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	// Each flow fetches a/b:1 and returns the secrets it used and the bearer tokens issued.
	type flow func(t *testing.T, log *slog.Logger) (secrets, tokens []string, err error)
	htpasswd := func(opts func(t *testing.T, host string) Options, pass string) flow {
		return func(t *testing.T, log *slog.Logger) ([]string, []string, error) {
			reg, img, _ := startHtpasswdRegistry(t)
			o := opts(t, reg.Host)
			o.Logger = log
			err := pull(t, testClient(t, o), mustRef(t, reg.Host+"/a/b:1"), img)
			return []string{pass, basic64(htUser, pass)}, nil, err
		}
	}
	token := func(setup func(t *testing.T, f *tokenFront, host string) Options,
		secrets ...string) flow {
		return func(t *testing.T, log *slog.Logger) ([]string, []string, error) {
			f := startTokenFront(t)
			f.ts.user, f.ts.pass = tokenUser, tokenPass
			f.refreshToken = refreshToken
			reg, imgs, _ := startFrontRegistry(t, f, "a/b")
			o := setup(t, f, reg.Host)
			o.Logger = log
			err := pull(t, testClient(t, o), mustRef(t, reg.Host+"/a/b:1"), imgs["a/b"])
			return secrets, f.tokens(), err
		}
	}
	yamlLogin := func(user, pass string) func(t *testing.T, host string) Options {
		return func(t *testing.T, host string) Options {
			return Options{Config: &RegistriesConfig{Configs: map[string]HostConfig{host: {
				Auth: &AuthConfig{Username: user, Password: pass}}}}}
		}
	}

	tests := []struct {
		name    string
		run     flow
		wantErr bool
		tokens  bool // the flow must have been issued tokens, or the check proves nothing
	}{
		{name: "htpasswd login from registries.yaml",
			run: htpasswd(yamlLogin(htUser, htPass), htPass)},
		{name: "htpasswd wrong password", run: htpasswd(yamlLogin(htUser, wrongPass),
			wrongPass), wantErr: true},
		{name: "htpasswd login from a credential helper",
			run: htpasswd(func(t *testing.T, host string) Options {
				installCredHelper(t, htUser, htPass)
				useDockerConfig(t, `{"credHelpers":{"`+host+`":"dlstest"}}`)
				return Options{Keychain: DefaultKeychain()}
			}, htPass)},
		{name: "token server login from docker config.json",
			run: token(func(t *testing.T, _ *tokenFront, host string) Options {
				useDockerConfig(t, `{"auths":{"`+host+`":{"auth":"`+
					basic64(tokenUser, tokenPass)+`"}}}`)
				return Options{Keychain: DefaultKeychain()}
			}, tokenPass, basic64(tokenUser, tokenPass)), tokens: true},
		{name: "token server refuses a wrong password",
			run: token(func(t *testing.T, _ *tokenFront, host string) Options {
				return yamlLogin(tokenUser, wrongPass)(t, host)
			}, wrongPass, basic64(tokenUser, wrongPass)), wantErr: true},
		{name: "identity token from docker config.json",
			run: token(func(t *testing.T, _ *tokenFront, host string) Options {
				useDockerConfig(t, `{"auths":{"`+host+`":{"identitytoken":"`+
					refreshToken+`"}}}`)
				return Options{Keychain: DefaultKeychain()}
			}, refreshToken), tokens: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateHome(t)
			log, lb := capturingLogger(t)

			secrets, tokens, err := tt.run(t, log)
			if (err != nil) != tt.wantErr {
				t.Fatalf("pull error = %v, want error %v", err, tt.wantErr)
			}
			if tt.tokens && len(tokens) == 0 {
				t.Fatalf("no token was issued: the flow shows nothing about tokens")
			}

			if !slices.ContainsFunc(lb.linesAt("DEBUG"), func(l string) bool {
				return strings.HasPrefix(l, "msg=request ")
			}) {
				t.Fatalf("no debug request line was logged: the check would prove nothing")
			}
			logged := strings.Join(lb.lines(), "\n")
			for _, s := range append(secrets, tokens...) {
				if strings.Contains(logged, s) {
					t.Errorf("log holds the secret %q", s)
				}
				if err != nil && strings.Contains(err.Error(), s) {
					t.Errorf("error %q holds the secret %q", err, s)
				}
			}
		})
	}
}

// tokenAccess returns the access claim of a JWT as "type:name:actions" strings. The
// signature is not checked: the registry did that when it accepted the token.
func tokenAccess(t testing.TB, jwt string) []string {
	t.Helper()

	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWT", jwt)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode JWT payload: %v", err)
	}

	var claims struct {
		Access []struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		} `json:"access"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("decode JWT claims: %v", err)
	}
	var out []string
	for _, a := range claims.Access {
		out = append(out, a.Type+":"+a.Name+":"+strings.Join(a.Actions, ","))
	}
	return out
}

func TestTokenScopePerRepository(t *testing.T) {
	f := startTokenFront(t)
	repos := []string{"a/b", "c/d"}
	reg, imgs, seen := startFrontRegistry(t, f, repos...)
	c := testClient(t, Options{})

	// Both at once: concurrent fetches must still ask for one scope each.
	var g errgroup.Group
	for _, repo := range repos {
		ref := mustRef(t, reg.Host+"/"+repo+":1")
		g.Go(func() error { return pull(t, c, ref, imgs[repo]) })
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("pull: %v", err)
	}

	scopes, _ := f.ts.requests()
	slices.Sort(scopes)
	if want := []string{"repository:a/b:pull", "repository:c/d:pull"}; !slices.Equal(scopes,
		want) {
		t.Errorf("token server was asked for scopes %q, want %q", scopes, want)
	}

	sent := map[string][]string{}
	for _, repo := range repos {
		for _, h := range seen.repo(repo) {
			tok, ok := strings.CutPrefix(h, "Bearer ")
			if !ok {
				t.Fatalf("%s: request carried Authorization %q, want a bearer token", repo, h)
			}
			if access := tokenAccess(t, tok); !slices.Equal(access,
				[]string{"repository:" + repo + ":pull"}) {
				t.Errorf("%s: token sent grants %q, want only its own pull", repo, access)
			}
			sent[repo] = append(sent[repo], tok)
		}
		// One manifest GET and one blob GET, with the one token fetched for the repo.
		if n := len(sent[repo]); n != 2 || sent[repo][0] != sent[repo][1] {
			t.Errorf("%s: %d requests with %d distinct tokens, want 2 with one", repo, n,
				len(slices.Compact(slices.Sorted(slices.Values(sent[repo])))))
		}
	}
	for _, tok := range sent["a/b"] {
		if slices.Contains(sent["c/d"], tok) {
			t.Errorf("the token of a/b was sent for c/d")
		}
	}
}

func TestShortLivedTokenRenewedBeforeUse(t *testing.T) {
	f := startTokenFront(t)
	f.expiresIn = 1
	reg, imgs, seen := startFrontRegistry(t, f, "a/b")
	c := testClient(t, Options{})
	ref, img := mustRef(t, reg.Host+"/a/b:1"), imgs["a/b"]

	if err := pull(t, c, ref, img); err != nil {
		t.Fatalf("pull: %v", err)
	}
	if n := len(f.tokens()); n != 1 {
		t.Fatalf("after the first pull the token server issued %d tokens, want 1", n)
	}

	// The JWT itself stays valid for minutes, so the registry would take the old token:
	// only the client's own expiry can make it ask for a new one.
	time.Sleep(1100 * time.Millisecond)
	if _, err := c.FetchBlob(context.Background(), ref, img.layer, &memSink{}); err != nil {
		t.Fatalf("FetchBlob after expiry: %v", err)
	}

	scopes, _ := f.ts.requests()
	if want := []string{"repository:a/b:pull", "repository:a/b:pull"}; !slices.Equal(scopes,
		want) {
		t.Errorf("token server was asked for %q, want %q", scopes, want)
	}
	toks := f.tokens()
	if len(toks) != 2 {
		t.Fatalf("token server issued %d tokens, want 2 (one renewal)", len(toks))
	}
	want := []string{"Bearer " + toks[0], "Bearer " + toks[0], "Bearer " + toks[1]}
	if got := seen.repo("a/b"); !slices.Equal(got, want) {
		t.Errorf("registry saw Authorization %q, want the first token twice, then the new "+
			"one at once (no 401 in between)", got)
	}
}

func TestIdentityTokenRefreshGrant(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, host string) Options
	}{
		{name: "auths identitytoken in docker config.json",
			setup: func(t *testing.T, host string) Options {
				useDockerConfig(t, `{"auths":{"`+host+`":{"identitytoken":"`+
					refreshToken+`"}}}`)
				return Options{Keychain: DefaultKeychain()}
			}},
		{name: "credential helper answering the <token> user",
			setup: func(t *testing.T, host string) Options {
				installCredHelper(t, "<token>", refreshToken)
				useDockerConfig(t, `{"credHelpers":{"`+host+`":"dlstest"}}`)
				return Options{Keychain: DefaultKeychain()}
			}},
		{name: "registries.yaml identity_token",
			setup: func(t *testing.T, host string) Options {
				return Options{Config: registriesYAML(t, host,
					"{identity_token: "+refreshToken+"}")}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateHome(t)
			f := startTokenFront(t)
			f.refreshToken = refreshToken
			reg, imgs, seen := startFrontRegistry(t, f, "a/b")
			c := testClient(t, tt.setup(t, reg.Host))

			if err := pull(t, c, mustRef(t, reg.Host+"/a/b:1"), imgs["a/b"]); err != nil {
				t.Fatalf("pull: %v", err)
			}

			forms := f.forms()
			if len(forms) != 1 {
				t.Fatalf("token server got %d POSTs, want 1", len(forms))
			}
			want := url.Values{"grant_type": {"refresh_token"},
				"refresh_token": {refreshToken}, "client_id": {tokenClientID},
				"service": {tokenService}, "scope": {"repository:a/b:pull"}}
			if got := forms[0].Encode(); got != want.Encode() {
				t.Errorf("refresh POST form = %s, want %s", got, want.Encode())
			}
			if scopes, _ := f.ts.requests(); len(scopes) != 0 {
				t.Errorf("token server also got GETs for %q, want none", scopes)
			}
			tok := "Bearer " + f.tokens()[0]
			if got := seen.repo("a/b"); !slices.Equal(got, []string{tok, tok}) {
				t.Errorf("registry saw Authorization %q, want the refreshed token twice", got)
			}
		})
	}
}
