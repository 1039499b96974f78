package integration

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

// tarEntry is one entry of an archive, read fully into memory (the fixtures are small).
type tarEntry struct {
	Header *tar.Header
	Data   []byte
}

// readTar returns every entry of the uncompressed tar at path, in order.
func readTar(t testing.TB, path string) []tarEntry {
	t.Helper()

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var entries []tarEntry
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}

		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s entry %s: %v", path, hdr.Name, err)
		}

		entries = append(entries, tarEntry{Header: hdr, Data: data})
	}
}

// entryJSON decodes the entry called name into v, failing t when it is absent or invalid.
func entryJSON(t testing.TB, entries []tarEntry, name string, v any) {
	t.Helper()

	for _, e := range entries {
		if e.Header.Name == name {
			if err := json.Unmarshal(e.Data, v); err != nil {
				t.Fatalf("decode archive entry %s: %v\n%s", name, err, e.Data)
			}
			return
		}
	}
	t.Fatalf("archive has no entry %s", name)
}

// fileDigest returns the sha256 of the file at path.
func fileDigest(t testing.TB, path string) digest.Digest {
	t.Helper()

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("hash %s: %v", path, err)
	}
	return digest.NewDigest(digest.SHA256, h)
}

// cachedBlobs returns the digests of the files under <cache>/blobs/sha256, each checked to
// hash to its name: existence there must mean verified.
func cachedBlobs(t testing.TB, cache string) map[digest.Digest]bool {
	t.Helper()

	dir := filepath.Join(cache, "blobs", "sha256")
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list cached blobs: %v", err)
	}

	blobs := map[digest.Digest]bool{}
	for _, f := range files {
		want := digest.NewDigestFromEncoded(digest.SHA256, f.Name())
		if got := fileDigest(t, filepath.Join(dir, f.Name())); got != want {
			t.Errorf("cached blob %s hashes to %s", f.Name(), got)
		}
		blobs[want] = true
	}
	return blobs
}

// writeFile writes content to name in dir and returns the path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()

	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
