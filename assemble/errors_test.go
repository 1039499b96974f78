package assemble

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/cache"
)

// dirNames lists dir, to show nothing (not even a temporary file) was left behind.
func dirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}

	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}

	return names
}

// writeBoth runs Write and WriteFile on the same request, expecting both to fail, checks
// WriteFile left no file, and returns both errors and what Write wrote.
func writeBoth(tb testing.TB, src Source, opts Options) (writeErr, fileErr error, out []byte) {
	tb.Helper()
	var buf bytes.Buffer
	_, writeErr = Write(context.Background(), src, &buf, opts)
	if writeErr == nil {
		tb.Fatal("Write succeeded")
	}

	dir := tb.TempDir()
	_, fileErr = WriteFile(context.Background(), src, filepath.Join(dir, "out.tar"), opts)
	if fileErr == nil {
		tb.Fatal("WriteFile succeeded")
	}

	if names := dirNames(tb, dir); len(names) != 0 {
		tb.Errorf("WriteFile left %v", names)
	}

	return writeErr, fileErr, buf.Bytes()
}

func TestWriteIncompleteWritesNothing(t *testing.T) {
	s := newTestSource(t)
	rng := newRand(t, 10)
	complete := s.singleImage("docker.io/library/a:1",
		s.buildManifest(t, linuxAMD64, randomBytes(rng, 100)))
	m := s.buildManifest(t, linuxAMD64, randomBytes(rng, 3000), randomBytes(rng, 100))
	partial := s.singleImage("docker.io/library/b:1", m)
	s.removeBlob(t, m.layers[0].Digest)
	s.removeBlob(t, m.config.Digest)

	err, fileErr, written := writeBoth(t, s, quietOptions(
		partial.Name, "docker.io/library/absent:1", complete.Name))
	if fileErr.Error() != err.Error() {
		t.Errorf("WriteFile error %q differs from Write's %q", fileErr, err)
	}

	if len(written) != 0 {
		t.Errorf("Write wrote %d bytes before failing", len(written))
	}

	var incomplete *IncompleteError
	if !errors.Is(err, ErrIncomplete) || !errors.As(err, &incomplete) {
		t.Fatalf("error %v is not an *IncompleteError", err)
	}

	missing := m.layers[0].Size + m.config.Size
	var total int64
	for _, b := range partial.Blobs {
		total += b.Size
	}

	want := []Shortfall{
		{Name: "docker.io/library/absent:1", Unknown: true},
		{Name: partial.Name, MissingBlobs: 2, TotalBlobs: 4, MissingBytes: missing,
			TotalBytes: total},
	}
	if !reflect.DeepEqual(incomplete.Images, want) {
		t.Errorf("shortfalls %+v, want %+v", incomplete.Images, want)
	}

	wantText := "images incomplete in cache: docker.io/library/absent:1 is not in the cache; " +
		"docker.io/library/b:1 lacks 2 of 4 blobs (" + formatBytes(missing) + " of " +
		formatBytes(total) + "); fetch them first"
	if err.Error() != wantText {
		t.Errorf("error text\n%s\nwant\n%s", err, wantText)
	}
}

func TestWriteCorruptBlob(t *testing.T) {
	s := newTestSource(t)
	rng := newRand(t, 11)
	m := s.buildManifest(t, linuxAMD64, randomBytes(rng, 5000), randomBytes(rng, 100))
	img := s.singleImage("docker.io/library/a:1", m)
	s.corruptBlob(t, m.layers[1].Digest)

	err, fileErr, written := writeBoth(t, s, quietOptions(img.Name))
	for _, e := range []error{err, fileErr} {
		if !errors.Is(e, cache.ErrCorrupt) || !strings.Contains(e.Error(), "copy blob "+
			m.layers[1].Digest.String()+": its bytes hash to sha256:") {
			t.Errorf("error %v, want a corrupt copy of %s", e, m.layers[1].Digest)
		}
	}

	if readErr := readToEnd(written); !errors.Is(readErr, io.ErrUnexpectedEOF) {
		t.Errorf("reading the cut stream ends with %v, want %v", readErr, io.ErrUnexpectedEOF)
	}
}

// readToEnd reads a tar stream through and returns how it ended: nil when whole, else the
// error a tar reader meets.
func readToEnd(data []byte) error {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}

		if err != nil {
			return err
		}

		_, err = io.Copy(io.Discard, tr)
		if err != nil {
			return err
		}
	}
}

// rejectCase is content Write must refuse before writing a byte.
type rejectCase struct {
	name  string
	build func(t *testing.T, s *testSource)
	want  string
}

var rejectCases = []rejectCase{
	{"empty cache", func(*testing.T, *testSource) {},
		"select images: the cache holds no image; fetch some first"},
	{"layers and diff_ids differ in number", buildLayerCountMismatch,
		"has 2 layers but config"},
	{"name without tag or digest", func(t *testing.T, s *testSource) {
		s.singleImage("docker.io/library/a", s.buildManifest(t, linuxAMD64, []byte("x")))
	}, "image docker.io/library/a: the name has neither tag nor digest; loaders need one"},
	{"name pins another digest", func(t *testing.T, s *testSource) {
		s.singleImage("docker.io/library/a@"+digest.FromString("other").String(),
			s.buildManifest(t, linuxAMD64, []byte("x")))
	}, "its name pins " + digest.FromString("other").String() + " but its target is sha256:"},
	{"no selected manifest", func(t *testing.T, s *testSource) {
		img := s.singleImage("docker.io/library/a:1", s.buildManifest(t, linuxAMD64, []byte("x")))
		img.Manifests = nil
		s.images[img.Name] = img
	}, "plan image docker.io/library/a:1: no platform manifest was selected; fetch it again"},
	{"layer not among the image's blobs", func(t *testing.T, s *testSource) {
		m := s.buildManifest(t, linuxAMD64, []byte("x"))
		img := s.singleImage("docker.io/library/a:1", m)
		img.Blobs = sortedBlobs([]ocispec.Descriptor{m.desc, m.config})
		s.images[img.Name] = img
	}, "is referenced but not among the image's blobs; fetch the image again"},
	{"schema 1 manifest", func(t *testing.T, s *testSource) {
		desc := s.putBlob(t, "application/vnd.docker.distribution.manifest.v1+prettyjws",
			[]byte(`{"schemaVersion":1,"fsLayers":[]}`))
		s.images["docker.io/library/a:1"] = cache.Image{Name: "docker.io/library/a:1",
			Target: desc, Manifests: []ocispec.Descriptor{desc},
			Blobs: []ocispec.Descriptor{desc}}
	}, "is Docker schema 1, which no current loader accepts"},
	{"malformed blob digest", func(t *testing.T, s *testSource) {
		m := s.buildManifest(t, linuxAMD64, []byte("x"))
		img := s.singleImage("docker.io/library/a:1", m)
		img.Blobs = append(img.Blobs, ocispec.Descriptor{Digest: "sha256:../../etc"})
		s.images[img.Name] = img
	}, `check image docker.io/library/a:1: blob "sha256:../../etc": invalid checksum digest length`},
	{"corrupt config", func(t *testing.T, s *testSource) {
		m := s.buildManifest(t, linuxAMD64, []byte("x"))
		s.singleImage("docker.io/library/a:1", m)
		s.corruptBlob(t, m.config.Digest)
	}, "run dls verify: corrupt content"},
	{"manifest.json over 1 MiB", buildHugeManifestJSON,
		"its manifest.json would be 1400140 bytes, over podman's limit of 1048576"},
}

func TestWriteRejects(t *testing.T) {
	for _, tc := range rejectCases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSource(t)
			tc.build(t, s)
			err, fileErr, written := writeBoth(t, s, quietOptions())
			for _, e := range []error{err, fileErr} {
				if !strings.Contains(e.Error(), tc.want) {
					t.Errorf("error %q\nwant it to contain %q", e, tc.want)
				}
			}

			if len(written) != 0 {
				t.Errorf("wrote %d bytes before failing", len(written))
			}
		})
	}
}

// buildLayerCountMismatch stores a manifest with two layers whose config names one.
func buildLayerCountMismatch(t *testing.T, s *testSource) {
	m := s.buildManifest(t, linuxAMD64, []byte("one"), []byte("two"))
	m.config = s.putJSON(t, ocispec.MediaTypeImageConfig, ocispec.Image{
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: m.diffIDs[:1]},
	})
	m.desc = s.putJSON(t, ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    m.config,
		Layers:    m.layers,
	})
	s.singleImage("docker.io/library/a:1", m)
}

// buildHugeManifestJSON stores an image of one layer repeated 17,500 times: its
// manifest.json item lists 17,500 quoted 77-byte paths and 17,499 commas (1,399,999
// bytes), plus 141 bytes of the rest of the item.
func buildHugeManifestJSON(t *testing.T, s *testSource) {
	s.repeatedLayerImage(t, "docker.io/library/a:1", "same", 17500)
}

// repeatedLayerImage stores an image named name whose only layer, content, is listed count
// times: a small image with a big manifest.json item.
func (s *testSource) repeatedLayerImage(t *testing.T, name, content string, count int,
) builtManifest {
	var m builtManifest
	layer := s.putBlob(t, ocispec.MediaTypeImageLayerGzip, gzipped(t, []byte(content)))
	for range count {
		m.layers = append(m.layers, layer)
		m.diffIDs = append(m.diffIDs, digest.FromString(content))
	}

	m.config = s.putJSON(t, ocispec.MediaTypeImageConfig, ocispec.Image{
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: m.diffIDs},
	})
	m.desc = s.putJSON(t, ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    m.config,
		Layers:    m.layers,
	})
	s.singleImage(name, m)
	return m
}
