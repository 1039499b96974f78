package registry

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

func TestResolveManifestKinds(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	oci := pushImage(t, reg, "a/oci", "1", ocispec.MediaTypeImageManifest, testSeed, 1000)
	docker := pushImage(t, reg, "a/docker", "1", MediaTypeDockerManifest, testSeed+1, 1000)
	ociIdx, ociIdxDigest := pushIndex(t, reg, "a/oci", "multi", ocispec.MediaTypeImageIndex, oci)
	list, listDigest := pushIndex(t, reg, "a/docker", "multi", MediaTypeDockerManifestList,
		docker)

	tests := []struct {
		name, ref string
		wantType  string
		wantBytes []byte
		wantDgst  digest.Digest
	}{
		{"oci manifest by tag", "/a/oci:1", ocispec.MediaTypeImageManifest,
			oci.manifest, oci.manifestDigest},
		{"oci manifest by digest", "/a/oci@" + oci.manifestDigest.String(),
			ocispec.MediaTypeImageManifest, oci.manifest, oci.manifestDigest},
		{"docker schema2 by tag", "/a/docker:1", MediaTypeDockerManifest,
			docker.manifest, docker.manifestDigest},
		{"oci index by tag", "/a/oci:multi", ocispec.MediaTypeImageIndex,
			ociIdx, ociIdxDigest},
		{"docker manifest list by digest", "/a/docker@" + listDigest.String(),
			MediaTypeDockerManifestList, list, listDigest},
		{"tag and digest fetches by digest", "/a/oci:nosuchtag@" + ociIdxDigest.String(),
			ocispec.MediaTypeImageIndex, ociIdx, ociIdxDigest},
	}
	c := testClient(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := c.Resolve(context.Background(), mustRef(t, reg.Host+tt.ref))
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			want := ocispec.Descriptor{MediaType: tt.wantType, Digest: tt.wantDgst,
				Size: int64(len(tt.wantBytes))}
			if m.Descriptor.MediaType != want.MediaType || m.Descriptor.Digest != want.Digest ||
				m.Descriptor.Size != want.Size {
				t.Errorf("descriptor = %+v, want %+v", m.Descriptor, want)
			}
			if string(m.Bytes) != string(tt.wantBytes) {
				t.Errorf("bytes differ from the pushed manifest")
			}
		})
	}
}

func TestFetchManifestChild(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	img := pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 10)
	c := testClient(t, Options{})
	ref := mustRef(t, reg.Host+"/a/b:1")

	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest,
		Digest: img.manifestDigest, Size: int64(len(img.manifest))}
	m, err := c.FetchManifest(context.Background(), ref, desc)
	if err != nil {
		t.Fatalf("FetchManifest: %v", err)
	}
	if m.Descriptor.Digest != img.manifestDigest {
		t.Errorf("digest = %s, want %s", m.Descriptor.Digest, img.manifestDigest)
	}

	desc.Size++
	_, err = c.FetchManifest(context.Background(), ref, desc)
	if err == nil || !strings.Contains(err.Error(), "descriptor says") {
		t.Errorf("FetchManifest with a wrong size: error = %v, want a size mismatch", err)
	}
}

func TestResolveNotFoundNamesImageAndEndpoint(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	c := testClient(t, Options{})
	ref := mustRef(t, reg.Host+"/a/x:1")

	_, err := c.Resolve(context.Background(), ref)
	want := "fetch manifest " + reg.Host + "/a/x:1 from " + reg.URL + ": not found"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("errors.Is(err, ErrNotFound) = false")
	}
}

func TestResolveUnreachableRegistry(t *testing.T) {
	host := registrytest.Unreachable(t)
	c := testClient(t, Options{RetryMax: 1})

	_, err := c.Resolve(context.Background(), mustRef(t, host+"/a/x:1"))
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("error = %v, want ErrUnreachable", err)
	}
	for _, part := range []string{"fetch manifest " + host + "/a/x:1 from http://" + host,
		"registry cannot be reached after 2 attempts", "connection refused"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not contain %q", err, part)
		}
	}
}

// schema1Layer is the well-known empty layer digest schema 1 manifests list.
const schema1Layer = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"

// serveManifest answers GETs of path with body and contentType and passes the rest on.
func serveManifest(path, contentType, body string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != path {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", contentType)
			_, _ = w.Write([]byte(body))
		})
	}
}

func TestResolveRefusesSchema1(t *testing.T) {
	const schema1 = `{"schemaVersion":1,"name":"a/old","tag":"1","architecture":"amd64",` +
		`"fsLayers":[{"blobSum":"` + schema1Layer + `"}],"history":[{"v1Compatibility":"{}"}]}`
	tests := []struct{ name, contentType string }{
		{"by content type", "application/vnd.docker.distribution.manifest.v1+prettyjws"},
		{"by fsLayers in the body", "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := registrytest.Start(t, registrytest.Options{
				Wrap: serveManifest("/v2/a/old/manifests/1", tt.contentType, schema1),
			})
			c := testClient(t, Options{})

			_, err := c.Resolve(context.Background(), mustRef(t, reg.Host+"/a/old:1"))
			if !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error = %v, want ErrUnsupported", err)
			}
			want := "image " + reg.Host + "/a/old:1 uses Docker schema 1, which is not " +
				"supported; re-push it with a current tool"
			if !strings.HasSuffix(err.Error(), want) {
				t.Errorf("error = %q, want it to end with %q", err, want)
			}
		})
	}
}

func TestResolveRejectsTamperedDigest(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{Wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodGet {
				w = &headerOverride{ResponseWriter: w, key: "Docker-Content-Digest",
					value: digest.FromString("other").String()}
			}
			h.ServeHTTP(w, r)
		})
	}})
	pushImage(t, reg, "a/b", "1", ocispec.MediaTypeImageManifest, testSeed, 10)
	c := testClient(t, Options{})

	_, err := c.Resolve(context.Background(), mustRef(t, reg.Host+"/a/b:1"))
	if err == nil || !strings.Contains(err.Error(), "registry says "+
		digest.FromString("other").String()) {
		t.Fatalf("error = %v, want a Docker-Content-Digest mismatch", err)
	}
}

// headerOverride sets one response header just before the status is written, after the
// registry set its own.
type headerOverride struct {
	http.ResponseWriter
	key, value string
	wrote      bool
}

func (w *headerOverride) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.Header().Set(w.key, w.value)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *headerOverride) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}
