// Package testimage builds real container images in memory for dls tests: gzip'd tar layers,
// image configs with correct rootfs.diff_ids, Docker schema 2 and OCI manifests, and
// multi-platform indexes with buildkit-style attestation manifests. It pushes them to a
// registrytest.Registry and returns every descriptor, so a test can assert exact digests.
//
// Everything is deterministic: fixed modification times, modes and owners in the tars, no
// gzip header time, and random data only from a *rand.Rand the test seeds (NewRand logs the
// seed). The same calls give the same digests in every run.
package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"math/rand/v2"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Created is the creation time written into every config and tar header, so that builds
// are reproducible.
var Created = time.Date(2024, time.January, 2, 3, 4, 5, 0, time.UTC)

// File is one regular file of a layer.
type File struct {
	// Name is the path inside the image, without a leading slash ("hello", "etc/motd").
	Name string
	// Mode is the permission bits; 0 means 0644.
	Mode int64
	Data []byte
}

// Layer is one image layer: the gzip'd tar the registry serves and the digest of the tar
// inside it.
type Layer struct {
	// Data is the compressed blob, as pushed and as it must appear in an archive.
	Data []byte
	// DiffID is the sha256 of the uncompressed tar, the value config.rootfs.diff_ids holds.
	DiffID digest.Digest
}

// Digest is the digest of the compressed blob.
func (l Layer) Digest() digest.Digest { return digest.FromBytes(l.Data) }

// NewRand returns a generator seeded with seed and logs the seed, so a failing run can be
// reproduced by reading the log.
func NewRand(t testing.TB, seed uint64) *rand.Rand {
	t.Helper()

	t.Logf("testimage: random seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// RandomBytes returns n bytes drawn from rng.
func RandomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// RandomLayer returns a layer holding one file at name with size random bytes from rng.
// Random data does not compress, so the blob is slightly larger than size.
func RandomLayer(t testing.TB, rng *rand.Rand, name string, size int) Layer {
	t.Helper()

	return NewLayer(t, File{Name: name, Data: RandomBytes(rng, size)})
}

// NewLayer writes files, in the order given, into a gzip'd tar. Parent directories are
// added as entries of their own (mode 0755) before the first file inside them. Headers carry
// uid and gid 0, no user names and the Created time.
func NewLayer(t testing.TB, files ...File) Layer {
	t.Helper()

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	dirs := map[string]bool{}
	for _, f := range files {
		for _, dir := range parents(f.Name) {
			if dirs[dir] {
				continue
			}
			dirs[dir] = true
			writeEntry(t, tw, &tar.Header{Name: dir + "/", Mode: 0o755, Typeflag: tar.TypeDir})
		}

		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: f.Name, Mode: mode, Size: int64(len(f.Data)),
			Typeflag: tar.TypeReg}
		writeEntry(t, tw, hdr)
		if _, err := tw.Write(f.Data); err != nil {
			t.Fatalf("write layer file %s: %v", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("close layer tar: %v", err)
	}

	return Layer{Data: gzipBytes(t, raw.Bytes()), DiffID: digest.FromBytes(raw.Bytes())}
}

func writeEntry(t testing.TB, tw *tar.Writer, hdr *tar.Header) {
	t.Helper()

	hdr.ModTime = Created
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatalf("write layer header %s: %v", hdr.Name, err)
	}
}

// parents lists the directories above name, outermost first: "a/b/c" gives "a", "a/b".
func parents(name string) []string {
	var dirs []string
	for dir := path.Dir(name); dir != "." && dir != "/"; dir = path.Dir(dir) {
		dirs = append(dirs, strings.TrimPrefix(dir, "/"))
	}
	for i, j := 0, len(dirs)-1; i < j; i, j = i+1, j-1 {
		dirs[i], dirs[j] = dirs[j], dirs[i]
	}
	return dirs
}

// gzipBytes compresses data with a header that has no name and no time, so equal input
// gives equal output.
func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()

	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatalf("gzip layer: %v", err)
	}

	if err := zw.Close(); err != nil {
		t.Fatalf("gzip layer: %v", err)
	}
	return buf.Bytes()
}
