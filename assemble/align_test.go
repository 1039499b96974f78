package assemble

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
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
