package assemble

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// blobHeader ends on the boundary from every block offset, for ustar-sized bodies, bodies
// over 8 GiB (pax size record) and sha512 names (pax path record), and reads back as the
// entry it describes, with nothing but the comment added.
func TestBlobHeaderAligns(t *testing.T) {
	names := []string{
		"blobs/sha256/" + strings.Repeat("a", 64),
		"blobs/sha512/" + strings.Repeat("b", 128),
	}
	for _, name := range names {
		for _, size := range []int64{bodyAlign, 300 << 20, maxUSTARSize + 1} {
			for block := range int64(2 * bodyAlign / tarBlock) {
				offset := 1<<30 + block*tarBlock
				blocks, err := blobHeader(offset, name, size)
				if err != nil {
					t.Fatalf("%s, %d bytes at %d: %v", name, size, offset, err)
				}

				end := offset + int64(len(blocks))
				if end%bodyAlign != 0 || len(blocks) > bodyAlign+3*tarBlock {
					t.Errorf("%s, %d bytes at %d: %d header bytes end at %d", name[:13],
						size, offset, len(blocks), end)
				}

				checkReadsBack(t, blocks, name, size)
			}
		}
	}
}

// A body shorter than a block gains nothing from the boundary, so it gets the bare header.
func TestBlobHeaderLeavesSmallBlobsAlone(t *testing.T) {
	name := "blobs/sha256/" + strings.Repeat("c", 64)
	blocks, err := blobHeader(tarBlock, name, bodyAlign-1)
	if err != nil || len(blocks) != tarBlock {
		t.Fatalf("header of %d bytes, %v; want one block", len(blocks), err)
	}
	checkReadsBack(t, blocks, name, bodyAlign-1)
}

// checkReadsBack parses blocks followed by a zero body and asserts the header's fields.
func checkReadsBack(tb testing.TB, blocks []byte, name string, size int64) {
	tb.Helper()
	tr := tar.NewReader(io.MultiReader(bytes.NewReader(blocks), zeroReader{}))
	hdr, err := tr.Next()
	if err != nil {
		tb.Fatalf("read header: %v", err)
	}

	comment, padded := hdr.PAXRecords["comment"]
	extra := len(hdr.PAXRecords)
	if padded {
		extra--
	}
	if hdr.Name != name || hdr.Size != size || hdr.Mode != fileMode ||
		hdr.ModTime.Unix() != 0 || (padded && strings.TrimRight(comment, " ") != alignNote) ||
		extra != len(wantedPAX(name, size)) {
		tb.Errorf("read back %q, %d bytes, mode %o, mtime %d, pax %q", hdr.Name, hdr.Size,
			hdr.Mode, hdr.ModTime.Unix(), hdr.PAXRecords)
	}
}

// wantedPAX lists the pax records Go's writer adds by itself for name and size.
func wantedPAX(name string, size int64) []string {
	var keys []string
	if len(name) > 100 {
		keys = append(keys, "path")
	}
	if size > maxUSTARSize {
		keys = append(keys, "size")
	}
	return keys
}

// zeroReader reads zeros without end.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// GNU tar, a reader outside Go, lists an archive with aligned bodies as its entries alone
// (no PaxHeaders.0 entries) and extracts each blob's exact bytes.
func TestGNUTarReadsAlignedArchive(t *testing.T) {
	s := newTestSource(t)
	rng := newRand(t, 60)
	m := s.buildManifest(t, linuxAMD64, randomBytes(rng, 3*bodyAlign+17), randomBytes(rng, 700))
	img := s.singleImage("docker.io/library/aligned:1", m)
	dir := t.TempDir()
	path := filepath.Join(dir, "images.tar")
	data := writeFile(t, s, path, img.Name)

	var want []string
	padded := 0
	for _, e := range readArchive(t, data) {
		want = append(want, e.hdr.Name)
		if _, ok := e.hdr.PAXRecords["comment"]; ok {
			padded++
		}
	}
	if padded != 1 {
		t.Fatalf("%d entries padded by a pax comment, want 1 (the layer)", padded)
	}
	out, err := exec.Command("tar", "-tf", path).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -tf: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); !slices.Equal(got, want) {
		t.Errorf("tar -tf lists %q, want %q", got, want)
	}

	extracted := filepath.Join(dir, "x")
	if err := os.Mkdir(extracted, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command("tar", "-xf", path, "-C", extracted).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -xf: %v\n%s", err, out)
	}
	for _, b := range m.blobs() {
		got, err := os.ReadFile(filepath.Join(extracted, "blobs", "sha256", b.Digest.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		if digest.FromBytes(got) != b.Digest {
			t.Errorf("GNU tar extracted %d bytes for %s, hashing to %s", len(got), b.Digest,
				digest.FromBytes(got))
		}
	}
}
