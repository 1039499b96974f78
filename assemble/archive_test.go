package assemble

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// entry is one tar entry as the tests see it.
type entry struct {
	hdr  *tar.Header
	data []byte
	// offset is where the body starts in the stream.
	offset int64
}

// readArchive parses a whole tar stream, failing on a missing trailer or bad header.
func readArchive(tb testing.TB, data []byte) []entry {
	tb.Helper()
	var entries []entry
	r := bytes.NewReader(data)
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		// archive/tar reads headers block by block, so r stands at the body.
		offset := int64(len(data) - r.Len())
		if errors.Is(err, io.EOF) {
			return entries
		}

		if err != nil {
			tb.Fatalf("read archive: %v", err)
		}

		content, err := io.ReadAll(tr)
		if err != nil {
			tb.Fatalf("read %s: %v", hdr.Name, err)
		}

		entries = append(entries, entry{hdr: hdr, data: content, offset: offset})
	}
}

// wantArchive is what one archive must hold.
type wantArchive struct {
	index, manifest string
	// repositories is the file's content, empty when the file must be absent.
	repositories string
	// blobs are the blobs that must be in the archive, in any order.
	blobs []ocispec.Descriptor
}

// checkArchive asserts data holds exactly want, in the fixed order, with fixed headers,
// and that every blob is src's bytes and hashes to its name.
func checkArchive(tb testing.TB, src *testSource, data []byte, want wantArchive) {
	tb.Helper()
	meta := map[string]string{
		"oci-layout":    `{"imageLayoutVersion":"1.0.0"}`,
		"index.json":    want.index,
		"manifest.json": want.manifest,
	}
	names := []string{"oci-layout", "index.json", "manifest.json"}
	if want.repositories != "" {
		meta["repositories"] = want.repositories
		names = append(names, "repositories")
	}

	names = append(names, "blobs/", "blobs/sha256/")
	for _, b := range sortedBlobs(want.blobs) {
		names = append(names, "blobs/sha256/"+b.Digest.Encoded())
	}

	entries := readArchive(tb, data)
	var got []string
	for _, e := range entries {
		got = append(got, e.hdr.Name)
		checkHeader(tb, e)
		checkEntryData(tb, src, e, meta)
	}

	if strings.Join(got, "\n") != strings.Join(names, "\n") {
		tb.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(names, "\n"))
	}
}

// checkHeader asserts the fixed header fields: mode, owner, time and ustar format, but
// for a blob of bodyAlign bytes or more, whose body must start on a bodyAlign boundary and
// whose header may carry, for that, one pax comment record saying so and nothing else.
func checkHeader(tb testing.TB, e entry) {
	tb.Helper()
	h := e.hdr
	wantType, wantMode := byte(tar.TypeReg), int64(0o644)
	if strings.HasSuffix(h.Name, "/") {
		wantType, wantMode = tar.TypeDir, 0o755
	}

	aligned := strings.HasPrefix(h.Name, "blobs/sha256/") && h.Size >= bodyAlign
	format := h.Format&tar.FormatUSTAR != 0 && len(h.PAXRecords) == 0
	if aligned && len(h.PAXRecords) == 1 {
		comment, ok := h.PAXRecords["comment"]
		format = ok && h.Format&tar.FormatPAX != 0 &&
			strings.TrimRight(comment, " ") == alignNote
	}

	if h.Typeflag != wantType || h.Mode != wantMode || h.Uid != 0 || h.Gid != 0 ||
		h.Uname != "" || h.Gname != "" || h.ModTime.Unix() != 0 || !format {
		tb.Errorf("%s: header type %c mode %o uid %d gid %d uname %q gname %q mtime %d "+
			"format %v pax %q", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Uname, h.Gname,
			h.ModTime.Unix(), h.Format, h.PAXRecords)
	}

	if aligned && e.offset%bodyAlign != 0 {
		tb.Errorf("%s: %d-byte body at offset %d, off the %d-byte boundary by %d", h.Name,
			h.Size, e.offset, bodyAlign, e.offset%bodyAlign)
	}
}

// checkEntryData asserts a metadata file has its wanted content and a blob is src's bytes,
// hashing to its name.
func checkEntryData(tb testing.TB, src *testSource, e entry, meta map[string]string) {
	tb.Helper()
	name := e.hdr.Name
	if want, ok := meta[name]; ok {
		if string(e.data) != want {
			tb.Errorf("%s:\n%s\nwant:\n%s", name, e.data, want)
		}
		return
	}

	hex, ok := strings.CutPrefix(name, "blobs/sha256/")
	if !ok || hex == "" {
		return
	}

	d := digest.NewDigestFromEncoded(digest.SHA256, hex)
	if digest.FromBytes(e.data) != d {
		tb.Errorf("%s: content hashes to %s", name, digest.FromBytes(e.data))
	}

	if !bytes.Equal(e.data, src.readBlob(tb, d)) {
		tb.Errorf("%s: content differs from the source's", name)
	}
}

// The golden JSON below is written out by hand, not produced by the structs under test.

func wantIndex(entries ...string) string {
	return `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",` +
		`"manifests":[` + strings.Join(entries, ",") + `]}`
}

func wantIndexEntry(target ocispec.Descriptor, name, refName string) string {
	return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d,"annotations":`+
		`{"io.containerd.image.name":%q,"org.opencontainers.image.ref.name":%q}}`,
		target.MediaType, target.Digest, target.Size, name, refName)
}

func wantItem(m builtManifest, tags ...string) string {
	quoted := func(ss []string) string {
		var q []string
		for _, s := range ss {
			q = append(q, fmt.Sprintf("%q", s))
		}
		return "[" + strings.Join(q, ",") + "]"
	}
	var layers []string
	for _, l := range m.layers {
		layers = append(layers, "blobs/sha256/"+l.Digest.Encoded())
	}

	return fmt.Sprintf(`{"Config":"blobs/sha256/%s","RepoTags":%s,"Layers":%s}`,
		m.config.Digest.Encoded(), quoted(tags), quoted(layers))
}

func wantManifest(items ...string) string {
	return "[" + strings.Join(items, ",") + "]"
}

// top is the hex of m's top layer diff_id, as the repositories file holds it.
func top(m builtManifest) string {
	return m.diffIDs[len(m.diffIDs)-1].Encoded()
}
