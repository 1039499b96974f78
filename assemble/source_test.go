package assemble

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/cache"
)

// testSource is a directory-backed Source: blobs in dir/blobs/<alg>/<hex>, images in a map.
// It stands in for *cache.Cache where a test must shape content the real cache refuses to
// hold (a corrupt blob, a dropped one); TestWriteFromCache runs the real cache.
type testSource struct {
	dir    string
	images map[string]cache.Image
	// unchanged are the blobs Unchanged vouches for; none unless a test says so.
	unchanged map[digest.Digest]bool
}

func newTestSource(tb testing.TB) *testSource {
	tb.Helper()
	return &testSource{dir: tb.TempDir(), images: map[string]cache.Image{}}
}

func (s *testSource) path(d digest.Digest) string {
	return filepath.Join(s.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func (s *testSource) Images() ([]cache.Image, error) {
	images := make([]cache.Image, 0, len(s.images))
	for _, img := range s.images {
		images = append(images, img)
	}

	return sortImages(images), nil
}

func (s *testSource) Image(name string) (cache.Image, error) {
	img, ok := s.images[name]
	if !ok {
		return cache.Image{}, fmt.Errorf("image %s: %w", name, cache.ErrNotFound)
	}

	return img, nil
}

func (s *testSource) HasBlob(d digest.Digest) (int64, bool) {
	fi, err := os.Stat(s.path(d))
	if err != nil {
		return 0, false
	}

	return fi.Size(), true
}

func (s *testSource) OpenBlob(d digest.Digest) (*os.File, error) {
	f, err := os.Open(s.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, cache.ErrNotFound)
	}

	return f, err
}

func (s *testSource) Unchanged(d digest.Digest, _ *os.File) bool {
	return s.unchanged[d]
}

func (s *testSource) ReadBlob(d digest.Digest, limit int64) ([]byte, error) {
	f, err := s.OpenBlob(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()

	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(data)) > limit {
		return nil, fmt.Errorf("blob %s is over %d bytes", d, limit)
	}

	return data, err
}

// putBlob stores data and returns its descriptor.
func (s *testSource) putBlob(tb testing.TB, mediaType string, data []byte) ocispec.Descriptor {
	tb.Helper()
	desc := ocispec.Descriptor{
		MediaType: mediaType,
		Digest:    digest.FromBytes(data),
		Size:      int64(len(data)),
	}
	err := os.MkdirAll(filepath.Dir(s.path(desc.Digest)), 0o755)
	if err != nil {
		tb.Fatal(err)
	}

	err = os.WriteFile(s.path(desc.Digest), data, 0o644)
	if err != nil {
		tb.Fatal(err)
	}

	return desc
}

// putJSON stores v encoded as JSON.
func (s *testSource) putJSON(tb testing.TB, mediaType string, v any) ocispec.Descriptor {
	tb.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}

	return s.putBlob(tb, mediaType, data)
}

func (s *testSource) removeBlob(tb testing.TB, d digest.Digest) {
	tb.Helper()
	err := os.Remove(s.path(d))
	if err != nil {
		tb.Fatal(err)
	}
}

// corruptBlob flips the last byte of blob d, keeping its size.
func (s *testSource) corruptBlob(tb testing.TB, d digest.Digest) {
	tb.Helper()
	data, err := os.ReadFile(s.path(d))
	if err != nil {
		tb.Fatal(err)
	}

	data[len(data)-1] ^= 0xff
	err = os.WriteFile(s.path(d), data, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
}

// readBlob returns the stored bytes of d.
func (s *testSource) readBlob(tb testing.TB, d digest.Digest) []byte {
	tb.Helper()
	data, err := os.ReadFile(s.path(d))
	if err != nil {
		tb.Fatal(err)
	}

	return data
}

// builtManifest is a platform manifest stored in a testSource, with what it points at.
type builtManifest struct {
	desc    ocispec.Descriptor // Platform set
	config  ocispec.Descriptor
	layers  []ocispec.Descriptor
	diffIDs []digest.Digest
}

// blobs lists the manifest, its config and its layers.
func (m builtManifest) blobs() []ocispec.Descriptor {
	return append([]ocispec.Descriptor{m.desc, m.config}, m.layers...)
}

// buildManifest stores each raw layer gzipped, a config naming their diff_ids, and an OCI
// manifest for platform.
func (s *testSource) buildManifest(tb testing.TB, platform ocispec.Platform, raws ...[]byte,
) builtManifest {
	tb.Helper()
	var m builtManifest
	for _, raw := range raws {
		m.layers = append(m.layers, s.putBlob(tb, ocispec.MediaTypeImageLayerGzip, gzipped(tb, raw)))
		m.diffIDs = append(m.diffIDs, digest.FromBytes(raw))
	}

	m.config = s.putJSON(tb, ocispec.MediaTypeImageConfig, ocispec.Image{
		Platform: platform,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: m.diffIDs},
	})
	m.desc = s.putJSON(tb, ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    m.config,
		Layers:    m.layers,
	})
	m.desc.Platform = &platform
	return m
}

// singleImage records name as the single-manifest image m, every blob present.
func (s *testSource) singleImage(name string, m builtManifest) cache.Image {
	img := cache.Image{
		Name:      name,
		Target:    withoutPlatform(m.desc),
		Manifests: []ocispec.Descriptor{m.desc},
		Blobs:     sortedBlobs(m.blobs()),
	}
	s.images[name] = img
	return img
}

// indexImage stores an OCI index of children and records name as that index with selected
// chosen; the blobs are the index, every child and selected's config and layers.
func (s *testSource) indexImage(tb testing.TB, name string, selected builtManifest,
	children ...ocispec.Descriptor) cache.Image {
	tb.Helper()
	index := s.putJSON(tb, ocispec.MediaTypeImageIndex, ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: children,
	})
	blobs := append([]ocispec.Descriptor{index}, children...)
	blobs = append(blobs, selected.config)
	img := cache.Image{
		Name:      name,
		Target:    index,
		Manifests: []ocispec.Descriptor{selected.desc},
		Children:  children,
		Blobs:     sortedBlobs(append(blobs, selected.layers...)),
	}
	s.images[name] = img
	return img
}

func withoutPlatform(d ocispec.Descriptor) ocispec.Descriptor {
	d.Platform = nil
	return d
}

// sortedBlobs sorts by digest and dedupes, as cache.Image.Blobs is; platforms and
// annotations are dropped as a blob list does not need them.
func sortedBlobs(descs []ocispec.Descriptor) []ocispec.Descriptor {
	out := make([]ocispec.Descriptor, 0, len(descs))
	for _, d := range descs {
		out = append(out, ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size})
	}

	slices.SortFunc(out, func(a, b ocispec.Descriptor) int {
		return strings.Compare(string(a.Digest), string(b.Digest))
	})
	return slices.CompactFunc(out, func(a, b ocispec.Descriptor) bool {
		return a.Digest == b.Digest
	})
}

func gzipped(tb testing.TB, raw []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, err := w.Write(raw)
	if err != nil {
		tb.Fatal(err)
	}

	err = w.Close()
	if err != nil {
		tb.Fatal(err)
	}

	return buf.Bytes()
}

// newRand returns a generator from a fixed seed, logged so a failure can be replayed.
func newRand(tb testing.TB, seed uint64) *rand.Rand {
	tb.Helper()
	tb.Logf("random seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed))
}

func randomBytes(rng *rand.Rand, n int) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}

	return data
}

var (
	linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	linuxARM64 = ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	unknown    = ocispec.Platform{OS: "unknown", Architecture: "unknown"}
)
