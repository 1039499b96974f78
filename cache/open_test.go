package cache

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestOpenCreatesLayout(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir)

	want := []string{".", "CACHEDIR.TAG", "blobs", "blobs/sha256", "index.db", "index.json",
		"lock", "oci-layout", "partial"}
	if got := listTree(t, dir); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("cache tree = %v, want %v", got, want)
	}

	layout, _ := os.ReadFile(c.path(layoutFile))
	if string(layout) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", layout)
	}
	tag, _ := os.ReadFile(c.path(tagFile))
	if !strings.HasPrefix(string(tag), "Signature: 8a477f597d28d172789f06886806bc55\n") {
		t.Errorf("CACHEDIR.TAG = %q", tag)
	}
}

func TestOpenReindexesUnindexedBlob(t *testing.T) {
	rng := newRand(t)
	dir := t.TempDir()
	c := openCache(t, dir)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// What a run killed between the rename into blobs/ and the index write leaves behind.
	desc, data := randomBlob(t, rng, 777)
	if err := os.WriteFile(c.blobPath(desc.Digest), data, blobMode); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(dir, blobsDir, "sha256", "not-a-digest")
	if err := os.WriteFile(stray, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	c = openCache(t, dir)
	indexed, err := c.indexedBlobs()
	if err != nil {
		t.Fatal(err)
	}
	want := []BlobInfo{{Digest: desc.Digest, Size: 777}}
	if len(indexed) != 1 || indexed[0] != want[0] {
		t.Fatalf("index after Open = %v, want %v", indexed, want)
	}
}

func TestOpenRefusesNewerFormat(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	setVersion(t, filepath.Join(dir, dbFile), "99")

	for _, readOnly := range []bool{false, true} {
		_, err := Open(dir, Options{ReadOnly: readOnly, Logger: testLogger(t)})
		want := "it has format version 99, this dls reads up to 1; upgrade dls"
		if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(ReadOnly=%v) = %v; want ErrVersion containing %q", readOnly, err, want)
		}
	}
}

// setVersion overwrites the format version recorded in the index at path.
func setVersion(t testing.TB, path, version string) {
	t.Helper()
	db, err := bolt.Open(path, 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte(version))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCopiedCacheWorks(t *testing.T) {
	rng := newRand(t)
	orig := filepath.Join(t.TempDir(), "original-cache")
	c := openCache(t, orig)
	descs, datas := putBlobs(t, c, rng, 1234, 99)
	img := testImage("registry.example.com/team/app:v2", descs...)
	if err := c.PutImage(img); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// Nothing in the cache may name where it lives.
	filepath.WalkDir(orig, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(path)
			if bytes.Contains(data, []byte(orig)) {
				t.Errorf("%s contains the cache's absolute path", path)
			}
		}
		return nil
	})

	moved := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-r", orig, moved).CombinedOutput(); err != nil {
		t.Fatalf("cp -r: %v: %s", err, out)
	}
	if err := os.RemoveAll(orig); err != nil {
		t.Fatal(err)
	}

	for _, readOnly := range []bool{true, false} {
		c, err := Open(moved, Options{ReadOnly: readOnly, Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("Open copy (ReadOnly=%v): %v", readOnly, err)
		}
		mustReadBlob(t, c, descs[0].Digest, datas[0])
		got, err := c.Image(img.Name)
		if err != nil || len(got.Blobs) != 2 || len(c.Missing(got)) != 0 {
			t.Errorf("Image in copy = %+v, %v; want 2 blobs, none missing", got, err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenRestoresLostIndexJSON(t *testing.T) {
	rng := newRand(t)
	dir := t.TempDir()
	c := openCache(t, dir)
	descs, _ := putBlobs(t, c, rng, 10)
	if err := c.PutImage(testImage("example.com/app:1", descs...)); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(c.path(indexFile))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(c.path(indexFile)); err != nil {
		t.Fatal(err)
	}

	c = openCache(t, dir)
	got, err := os.ReadFile(c.path(indexFile))
	if err != nil || string(got) != string(want) {
		t.Errorf("index.json after Open = %s (%v), want %s", got, err, want)
	}
}
