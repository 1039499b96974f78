package assemble

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// twoPlatformImage records an index image fetched for linux/amd64 and linux/arm64, the
// two sharing one base layer.
func twoPlatformImage(t *testing.T, s *testSource) (builtManifest, builtManifest) {
	t.Helper()

	base := []byte("shared base layer")
	amd64 := s.buildManifest(t, ocispec.Platform{OS: "linux", Architecture: "amd64"}, base,
		[]byte("amd64 top"))
	arm64 := s.buildManifest(t, ocispec.Platform{OS: "linux", Architecture: "arm64",
		Variant: "v8"}, base, []byte("arm64 top"))
	img := s.indexImage(t, "docker.io/library/app:1", amd64, amd64.desc, arm64.desc)
	img.Manifests = append(img.Manifests, arm64.desc)
	img.Blobs = sortedBlobs(append(img.Blobs, arm64.blobs()...))
	s.images[img.Name] = img
	return amd64, arm64
}

func TestPlatformsNarrowTheArchive(t *testing.T) {
	arm64Platform := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	s := newTestSource(t)
	amd64, arm64 := twoPlatformImage(t, s)

	opts := quietOptions()
	opts.Platforms = []ocispec.Platform{arm64Platform}
	data, _ := writeArchive(t, s, opts)

	var names []string
	for _, e := range readArchive(t, data) {
		names = append(names, e.hdr.Name)
	}
	has := func(d digest.Digest) bool {
		return slices.Contains(names, "blobs/sha256/"+d.Encoded())
	}
	for _, d := range []digest.Digest{arm64.config.Digest, arm64.layers[0].Digest,
		arm64.layers[1].Digest, amd64.desc.Digest, arm64.desc.Digest} {
		if !has(d) {
			t.Errorf("archive lacks %s, which linux/arm64 or the index needs", d)
		}
	}
	for _, d := range []digest.Digest{amd64.config.Digest, amd64.layers[1].Digest} {
		if has(d) {
			t.Errorf("archive holds %s, which only linux/amd64 uses", d)
		}
	}
}

func TestPlatformNotFetchedIsNamed(t *testing.T) {
	s := newTestSource(t)
	twoPlatformImage(t, s)

	var out strings.Builder
	opts := quietOptions()
	opts.Platforms = []ocispec.Platform{{OS: "linux", Architecture: "s390x"}}
	_, err := Write(context.Background(), s, &out, opts)

	want := "image docker.io/library/app:1 was fetched for linux/amd64, linux/arm64/v8 only; " +
		"fetch it with --platform linux/s390x"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
	if out.Len() != 0 {
		t.Errorf("%d bytes written before the error, want none", out.Len())
	}
}
