package cache

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// TestOpenMustExist opens directories that hold no cache with MustExist, as dls prune and
// dls verify --repair do, and expects ErrNotFound with nothing created.
func TestOpenMustExist(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"empty directory", func(t *testing.T, dir string) {}},
		{"podman's storage root", func(t *testing.T, dir string) {
			for _, d := range []string{"overlay", "overlay-images", "overlay-layers"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			err := os.WriteFile(filepath.Join(dir, "storage.lock"), nil, 0o600)
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"blobs and partial downloads, no index", func(t *testing.T, dir string) {
			for _, d := range []string{"blobs/sha256", "partial"} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tt := range tests {
		for _, readOnly := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, read-only %v", tt.name, readOnly), func(t *testing.T) {
				dir := t.TempDir()
				tt.setup(t, dir)
				before := listTree(t, dir)

				opts := Options{ReadOnly: readOnly, MustExist: true, Logger: testLogger(t)}
				_, err := Open(dir, opts)
				want := "no dls cache at " + dir + " (no index.db); check --cache, or run " +
					"dls fetch to create one: not found in cache"
				if !errors.Is(err, ErrNotFound) || err.Error() != want {
					t.Errorf("Open = %v\nwant ErrNotFound: %s", err, want)
				}
				if after := listTree(t, dir); !slices.Equal(after, before) {
					t.Errorf("Open changed the tree:\n%v\nwas\n%v", after, before)
				}
			})
		}
	}

	t.Run("an existing cache opens", func(t *testing.T) {
		dir := t.TempDir()
		if err := openCache(t, dir).Close(); err != nil {
			t.Fatal(err)
		}
		c, err := Open(dir, Options{MustExist: true, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestOpenRefusesAnotherProgramsDatabase opens a directory whose index.db is a bbolt file of
// another program and expects an error and nothing created or written.
func TestOpenRefusesAnotherProgramsDatabase(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, dbFile)
	db, err := bolt.Open(path, 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("settings"))
		if err != nil {
			return err
		}
		return b.Put([]byte("theme"), []byte("dark"))
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	before := listTree(t, dir)
	data, _ := os.ReadFile(path)

	for _, readOnly := range []bool{false, true} {
		_, err := Open(dir, Options{ReadOnly: readOnly, Logger: testLogger(t)})
		want := "open cache " + dir + ": its index.db holds another program's data, not " +
			"dls's; check --cache"
		if err == nil || err.Error() != want {
			t.Errorf("Open(ReadOnly=%v) = %v\nwant %s", readOnly, err, want)
		}
	}
	if _, err := RebuildIndex(dir, Options{Logger: testLogger(t)}); err == nil ||
		errors.Is(err, ErrIndexDamaged) {
		t.Errorf("RebuildIndex = %v; want an error other than ErrIndexDamaged", err)
	}

	after, _ := os.ReadFile(path)
	if tree := listTree(t, dir); !slices.Equal(tree, before) ||
		!bytes.Equal(after, data) {
		t.Errorf("the directory changed: %v, was %v; index.db rewritten: %v", tree, before,
			!bytes.Equal(after, data))
	}
}

// TestOpenRemovesPutLeftovers leaves what a run killed inside PutBlob leaves, a temporary
// file under partial/, beside a resumable download, and expects a writable Open to remove
// the first only, and a read-only one neither.
func TestOpenRemovesPutLeftovers(t *testing.T) {
	rng := newRand(t)
	dir := t.TempDir()
	if err := openCache(t, dir).Close(); err != nil {
		t.Fatal(err)
	}
	desc, data := randomBlob(t, rng, 300)
	leftover := putPrefix + partialName(desc.Digest) + "-123456"
	download := partialName(desc.Digest)
	for _, name := range []string{leftover, download} {
		if err := os.WriteFile(filepath.Join(dir, partialDir, name), data[:100],
			0o644); err != nil {
			t.Fatal(err)
		}
	}

	openReadOnly(t, dir)
	entries, _ := os.ReadDir(filepath.Join(dir, partialDir))
	if len(entries) != 2 {
		t.Errorf("read-only Open left %d partial files, want 2", len(entries))
	}

	openCache(t, dir)
	entries, _ = os.ReadDir(filepath.Join(dir, partialDir))
	if len(entries) != 1 || entries[0].Name() != download {
		t.Errorf("partial/ after a writable Open holds %v, want only %s", entries, download)
	}
}
