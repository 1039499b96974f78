package registry

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

// onManifestHEAD wraps a registry so that HEADs of manifests go through change, which
// may answer them itself (returning true) or alter the writer the registry answers into.
func onManifestHEAD(change func(w *http.ResponseWriter) bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") &&
				change(&w) {
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestTagDigest(t *testing.T) {
	tests := []struct {
		name     string
		wrap     func(http.Handler) http.Handler
		tag      string
		wantHEAD int // HEADs that reached the registry
		wantGET  int
		wantErr  string // "" for success
	}{
		{"HEAD gives the digest", nil, "1", 1, 0, ""},
		{"HEAD refused with 405 falls back to GET",
			onManifestHEAD(func(w *http.ResponseWriter) bool {
				(*w).WriteHeader(http.StatusMethodNotAllowed)
				return true
			}), "1", 0, 1, ""},
		{"HEAD without Docker-Content-Digest falls back to GET",
			onManifestHEAD(func(w *http.ResponseWriter) bool {
				*w = &headerOverride{ResponseWriter: *w, key: "Docker-Content-Digest"}
				return false
			}), "1", 1, 1, ""},
		{"unknown tag", nil, "nosuch", 1, 0, "look up tag HOST/a/b:nosuch from URL: not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := registrytest.Start(t, registrytest.Options{Wrap: tt.wrap})
			img := pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 10)
			c := testClient(t, Options{})
			reg.ResetCounts()

			ref := mustRef(t, reg.Host+"/a/b:"+tt.tag).(reference.NamedTagged)
			got, err := c.TagDigest(context.Background(), ref)
			if tt.wantErr == "" {
				if err != nil || got != img.manifestDigest {
					t.Errorf("TagDigest = %s, %v; want %s", got, err, img.manifestDigest)
				}
			} else {
				want := strings.NewReplacer("HOST", reg.Host, "URL", reg.URL).Replace(tt.wantErr)
				if err == nil || err.Error() != want || !errors.Is(err, ErrNotFound) {
					t.Errorf("TagDigest = %s, %v; want error %q (ErrNotFound)", got, err, want)
				}
			}
			if n := reg.Requests("HEAD manifest"); n != tt.wantHEAD {
				t.Errorf("HEAD manifest requests = %d, want %d", n, tt.wantHEAD)
			}
			if n := reg.Requests("GET manifest"); n != tt.wantGET {
				t.Errorf("GET manifest requests = %d, want %d", n, tt.wantGET)
			}
		})
	}
}

func TestResolveChecksTagOfPinnedReference(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	one := pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 10)
	two := pushImage(t, reg, "a/b", "2", ocispec.MediaTypeImageManifest, testSeed+1, 10)
	d1, d2 := one.manifestDigest, two.manifestDigest

	tests := []struct {
		name      string
		ref       string
		wantTag   digest.Digest
		wantMoved bool
		wantHEAD  int
		wantWarn  string // "" for none; HOST, D1 and D2 are replaced
	}{
		{"tag points to the pinned digest", "/a/b:1@D1", d1, false, 1, ""},
		{"digest belongs to another tag", "/a/b:2@D1", d2, true, 1,
			`msg="tag moved or the digest belongs to another tag; using the pinned ` +
				`digest" image=HOST/a/b:2@D1 tag_digest=D2 pinned_digest=D1`},
		{"tag unknown", "/a/b:nosuch@D1", "", false, 1,
			`msg="cannot check the tag of a pinned image; using the pinned digest" ` +
				`image=HOST/a/b:nosuch@D1 error="look up tag HOST/a/b:nosuch from ` +
				`http://HOST: not found"`},
		{"digest only is not checked", "/a/b@D1", "", false, 0, ""},
		{"tag only is not checked", "/a/b:1", "", false, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := capturingLogger(t)
			c := testClient(t, Options{Logger: log})
			subst := strings.NewReplacer("HOST", reg.Host, "D1", d1.String(), "D2", d2.String())
			reg.ResetCounts()

			m, err := c.Resolve(context.Background(), mustRef(t, reg.Host+subst.Replace(tt.ref)))
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if m.Descriptor.Digest != d1 || string(m.Bytes) != string(one.manifest) {
				t.Errorf("manifest %s, want the pinned %s", m.Descriptor.Digest, d1)
			}
			if m.TagDigest != tt.wantTag || m.TagMoved() != tt.wantMoved {
				t.Errorf("TagDigest = %q, TagMoved = %v; want %q, %v", m.TagDigest,
					m.TagMoved(), tt.wantTag, tt.wantMoved)
			}
			if n := reg.Requests("HEAD manifest"); n != tt.wantHEAD {
				t.Errorf("HEAD manifest requests = %d, want %d", n, tt.wantHEAD)
			}

			var want []string
			if tt.wantWarn != "" {
				want = []string{subst.Replace(tt.wantWarn)}
			}
			if got := logs.linesAt("WARN"); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"),
					strings.Join(want, "\n"))
			}
		})
	}
}
