package cache

import (
	"bytes"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testSeed fixes the random blob contents; tests log it so a failure can be replayed.
const testSeed = 20240611

// newRand returns the fixed-seed source of test data.
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	t.Logf("random data seed %d", testSeed)

	return newRandQuiet()
}

// testLogger discards records unless the test runs verbosely.
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	if testing.Verbose() {
		opts := &slog.HandlerOptions{Level: slog.LevelDebug}

		return slog.New(slog.NewTextHandler(os.Stderr, opts))
	}

	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openCache opens a writable cache at dir and closes it when the test ends.
func openCache(t testing.TB, dir string) *Cache {
	t.Helper()
	c, err := Open(dir, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { c.Close() })

	return c
}

// openReadOnly opens dir read-only and closes it when the test ends.
func openReadOnly(t testing.TB, dir string) *Cache {
	t.Helper()
	c, err := Open(dir, Options{ReadOnly: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open(%s, ReadOnly): %v", dir, err)
	}
	t.Cleanup(func() { c.Close() })

	return c
}

// randomBlob returns size random bytes and their descriptor.
func randomBlob(t testing.TB, rng *rand.Rand, size int) (ocispec.Descriptor, []byte) {
	t.Helper()
	data := randomBytes(rng, size)

	return descOf(data), data
}

// randomBytes returns size bytes from rng.
func randomBytes(rng *rand.Rand, size int) []byte {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}

	return data
}

// descOf describes data as a layer blob.
func descOf(data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayerGzip,
		Digest:    digest.FromBytes(data),
		Size:      int64(len(data)),
	}
}

// putBlobs stores blobs of the given sizes and returns their descriptors and contents.
func putBlobs(t testing.TB, c *Cache, rng *rand.Rand,
	sizes ...int) ([]ocispec.Descriptor, [][]byte) {
	t.Helper()
	var descs []ocispec.Descriptor
	var datas [][]byte
	for _, size := range sizes {
		desc, data := randomBlob(t, rng, size)
		err := c.PutBlob(desc, data)
		if err != nil {
			t.Fatalf("PutBlob(%s): %v", desc.Digest, err)
		}
		descs = append(descs, desc)
		datas = append(datas, data)
	}

	return descs, datas
}

// testImage builds an image whose target is descs[0] and whose blobs are all of descs.
func testImage(name string, descs ...ocispec.Descriptor) Image {
	target := descs[0]
	target.MediaType = ocispec.MediaTypeImageManifest
	blobs := slices.Clone(descs)
	blobs[0] = target
	slices.SortFunc(blobs, func(a, b ocispec.Descriptor) int {
		return compareBlobs(BlobInfo{Digest: a.Digest}, BlobInfo{Digest: b.Digest})
	})

	return Image{Name: name, Target: target, Manifests: []ocispec.Descriptor{target}, Blobs: blobs}
}

// mustReadBlob reads a blob and checks it equals want.
func mustReadBlob(t testing.TB, c *Cache, d digest.Digest, want []byte) {
	t.Helper()
	got, err := c.ReadBlob(d, int64(len(want)))
	if err != nil {
		t.Fatalf("ReadBlob(%s): %v", d, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("ReadBlob(%s) returned %d bytes that differ from the %d stored",
			d, len(got), len(want))
	}
}

// listTree returns every path under dir, relative and sorted, for before/after comparisons.
func listTree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, rel)

		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}

	return out
}
