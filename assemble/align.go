package assemble

import (
	"archive/tar"
	"fmt"
	"strings"
)

// bodyAlign is the boundary every blob body of at least that size starts on in the archive:
// the block size of XFS, btrfs and ext4. A body whose offset in the archive and in its blob
// file agree modulo the block size can be cloned rather than copied: on XFS (reflink=1, the
// default on RHEL, where RKE2 runs) and btrfs, cloneRange then shares the cache file's
// extents with the archive, which costs no data written and no extra disk space. Tar puts a
// body 512 bytes after its header, so without help 7 in 8 bodies would miss the boundary.
const bodyAlign = 4096

// alignNote opens the POSIX pax "comment" record that pads a blob's header to the boundary.
// Readers discard comment records (POSIX.1-2008, pax, "comment"); Go's archive/tar, which
// containerd, docker, podman and skopeo read archives with, keeps them out of the header
// fields, so the entries read exactly as without it.
const alignNote = "dls: pads this header so that the file's content starts on a 4096-byte " +
	"boundary, where file systems can share it with the cache"

// maxAlignTries bounds blobHeader's search; one correction normally suffices.
const maxAlignTries = 4

// blobHeader returns the header blocks of blob entry name of size bytes written at offset
// in the stream. For a body of at least bodyAlign bytes they end on a bodyAlign boundary:
// a pax extended header carrying a comment record is put first, its record as long as it
// takes. The result depends only on offset, name and size, so archives stay reproducible.
func blobHeader(offset int64, name string, size int64) ([]byte, error) {
	hdr := entryHeader(name, tar.TypeReg, fileMode, size)
	plain, err := headerBlocks(hdr)
	if err != nil || size < bodyAlign || (offset+int64(len(plain)))%bodyAlign == 0 {
		return plain, err
	}

	// Each pass lengthens the comment by the bytes the header falls short of the boundary;
	// the record's blocks grow by as much, unless its length prefix gains a digit just
	// across a block's end, which the next pass corrects.
	padding := 0
	for range maxAlignTries {
		hdr.PAXRecords = map[string]string{"comment": alignNote + strings.Repeat(" ", padding)}
		blocks, err := headerBlocks(hdr)
		if err != nil {
			return nil, err
		}

		short := (bodyAlign - (offset+int64(len(blocks)))%bodyAlign) % bodyAlign
		if short == 0 {
			return blocks, nil
		}

		padding += int(short)
	}

	return nil, fmt.Errorf("align header of %s at offset %d: no comment length fits", name,
		offset)
}
