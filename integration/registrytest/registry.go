// Package registrytest runs a real CNCF distribution registry in-process on loopback for
// tests, counts the requests it serves, and pushes content to it over the distribution API.
//
// It is the registry every dls test talks to: the same code that serves Docker's and many
// companies' registries, not a fake.
package registrytest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	// The htpasswd access controller registers itself with distribution's auth factory.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	// The filesystem driver registers itself with the storage factory.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// HtpasswdRealm is the realm of the Basic challenge an Htpasswd registry sends.
const HtpasswdRealm = "registrytest"

// Login is a user and password of an Htpasswd registry.
type Login struct {
	User, Password string
}

// Options configure a test registry. The zero value is an open registry.
type Options struct {
	// Auth is the distribution auth section (htpasswd, token); nil means none.
	Auth configuration.Auth
	// Htpasswd, when not empty, makes the registry require a Basic login of one of these
	// users, checked by distribution's htpasswd access controller against a bcrypt file
	// Start writes (the setup of `registry` with REGISTRY_AUTH=htpasswd). PushBlob and
	// PushManifest log in as the first user. It replaces Auth.
	Htpasswd []Login
	// Wrap, when set, wraps the registry handler (to inject faults or record headers).
	Wrap func(http.Handler) http.Handler
	// AllowURLs are regular expressions that the urls of a pushed manifest's layers
	// (foreign and non-distributable layers) must match (distribution's
	// validation.manifests.urls.allow). Such a layer need not be pushed to the registry.
	// nil refuses every manifest whose layers name urls, as distribution does by default.
	AllowURLs []string
}

// Registry is a running registry. Its counters are safe for concurrent use.
type Registry struct {
	// URL is the base URL, e.g. "http://127.0.0.1:41234".
	URL string
	// Host is host:port, the form used in image references.
	Host string

	server *httptest.Server
	push   *Login // the login of pushes; nil for a registry without htpasswd
	mu     sync.Mutex
	counts map[string]int
}

// Start runs a registry storing its data under a temporary directory of t and stops it
// when the test ends.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()

	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{
		"filesystem": configuration.Parameters{"rootdirectory": t.TempDir()},
		"delete":     configuration.Parameters{"enabled": true},
	}
	cfg.Auth = opts.Auth
	r := &Registry{counts: map[string]int{}}
	if len(opts.Htpasswd) > 0 {
		cfg.Auth = htpasswdAuth(t, opts.Htpasswd)
		push := opts.Htpasswd[0]
		r.push = &push
	}
	// distribution rewrites the patterns in place; the caller's slice stays as it was.
	cfg.Validation.Manifests.URLs.Allow = slices.Clone(opts.AllowURLs)
	// The registry logs every request through logrus at info; tests and the demo print
	// their own findings, so only the registry's errors are worth showing.
	logrus.SetLevel(logrus.ErrorLevel)
	cfg.HTTP.Headers = http.Header{"X-Content-Type-Options": []string{"nosniff"}}

	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, cfg)

	var h http.Handler = r.count(app)
	if opts.Wrap != nil {
		h = opts.Wrap(h)
	}
	r.server = httptest.NewServer(h)
	r.URL = r.server.URL
	r.Host = strings.TrimPrefix(r.server.URL, "http://")
	t.Cleanup(func() {
		r.server.Close()
		cancel()
	})
	return r
}

// htpasswdAuth writes logins to a bcrypt htpasswd file under a temporary directory of t
// and returns the auth section that checks them. The lowest bcrypt cost keeps each
// request's check fast; distribution reads the cost from the hash.
func htpasswdAuth(t testing.TB, logins []Login) configuration.Auth {
	t.Helper()

	var b strings.Builder
	for _, l := range logins {
		hash, err := bcrypt.GenerateFromPassword([]byte(l.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("hash password of %s: %v", l.User, err)
		}

		fmt.Fprintf(&b, "%s:%s\n", l.User, hash)
	}

	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("write htpasswd file: %v", err)
	}
	return configuration.Auth{"htpasswd": configuration.Parameters{
		"realm": HtpasswdRealm, "path": path,
	}}
}

// count records each request by kind ("GET manifest", "HEAD blob", ...).
func (r *Registry) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.counts[req.Method+" "+kind(req.URL.Path)]++
		r.mu.Unlock()
		next.ServeHTTP(w, req)
	})
}

func kind(path string) string {
	switch {
	case strings.Contains(path, "/blobs/uploads"):
		return "upload"
	case strings.Contains(path, "/blobs/"):
		return "blob"
	case strings.Contains(path, "/manifests/"):
		return "manifest"
	default:
		return "other"
	}
}

// Requests returns how many requests of one kind were served, e.g. Requests("GET blob").
func (r *Registry) Requests(kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[kind]
}

// ResetCounts zeroes every counter, so a test can count the requests of one step.
func (r *Registry) ResetCounts() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts = map[string]int{}
}

// PushBlob uploads data to repo (monolithic upload) and returns its digest.
func (r *Registry) PushBlob(t testing.TB, repo string, data []byte) digest.Digest {
	t.Helper()

	dgst := digest.FromBytes(data)
	req, err := http.NewRequest(http.MethodPost, r.URL+"/v2/"+repo+"/blobs/uploads/", nil)
	if err != nil {
		t.Fatalf("start upload to %s: %v", repo, err)
	}

	resp, err := r.send(req)
	if err != nil {
		t.Fatalf("start upload to %s: %v", repo, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload to %s: status %s", repo, resp.Status)
	}

	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatalf("upload location for %s: %v", repo, err)
	}
	base, _ := url.Parse(r.URL)
	loc = base.ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", dgst.String())
	loc.RawQuery = q.Encode()

	r.put(t, loc.String(), "application/octet-stream", data)
	return dgst
}

// PushManifest uploads a manifest or index under ref (a tag or a digest) in repo and returns
// its digest.
func (r *Registry) PushManifest(t testing.TB, repo, ref, mediaType string,
	data []byte) digest.Digest {
	t.Helper()

	r.put(t, r.URL+"/v2/"+repo+"/manifests/"+ref, mediaType, data)
	return digest.FromBytes(data)
}

func (r *Registry) put(t testing.TB, u, contentType string, data []byte) {
	t.Helper()

	req, err := http.NewRequest(http.MethodPut, u, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("put %s: %v", u, err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := r.send(req)
	if err != nil {
		t.Fatalf("put %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("put %s: status %s: %s", u, resp.Status, body)
	}
}

// send sends a push request, logged in as the push user of an Htpasswd registry.
func (r *Registry) send(req *http.Request) (*http.Response, error) {
	if r.push != nil {
		req.SetBasicAuth(r.push.User, r.push.Password)
	}
	return http.DefaultClient.Do(req)
}

// String names the registry in test logs.
func (r *Registry) String() string { return fmt.Sprintf("registry at %s", r.URL) }
