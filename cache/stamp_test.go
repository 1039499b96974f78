package cache

import (
	"context"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
)

// unchanged opens the blob d of the cache at dir afresh and asks Unchanged about its file.
func unchanged(t *testing.T, dir string, d digest.Digest) bool {
	t.Helper()

	c, err := Open(dir, Options{ReadOnly: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	f, err := c.OpenBlob(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return c.Unchanged(d, fi)
}

func TestUnchangedVouchesOnlyForTheVerifiedFile(t *testing.T) {
	f := newFixture(t)
	if err := f.c.Close(); err != nil {
		t.Fatal(err)
	}

	for _, d := range []digest.Digest{f.a1.Digest, f.a2.Digest, f.orph.Digest} {
		if !unchanged(t, f.dir, d) {
			t.Errorf("blob %s just committed: Unchanged = false, want true", d)
		}
	}

	// chmod moves the ctime: the file may have been changed since, so it is hashed.
	if err := os.Chmod(f.c.blobPath(f.a1.Digest), 0o644); err != nil {
		t.Fatal(err)
	}
	if unchanged(t, f.dir, f.a1.Digest) {
		t.Errorf("blob %s after chmod: Unchanged = true, want false", f.a1.Digest)
	}

	// The same bytes in another file (a restore, a copy back) are another file.
	path := f.c.blobPath(f.a2.Digest)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, blobMode); err != nil {
		t.Fatal(err)
	}
	if unchanged(t, f.dir, f.a2.Digest) {
		t.Errorf("blob %s rewritten: Unchanged = true, want false", f.a2.Digest)
	}

	// A blob dropped from the index takes its record along.
	c := openCache(t, f.dir)
	if _, err := c.Prune(context.Background(), []string{nameA, nameB}, false); err != nil {
		t.Fatal(err)
	}
	stamps, err := c.readStamps()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := stamps[f.orph.Digest]; ok {
		t.Errorf("pruned blob %s still has a verified-file record", f.orph.Digest)
	}
	if _, ok := stamps[f.sh.Digest]; !ok {
		t.Errorf("kept blob %s lost its verified-file record", f.sh.Digest)
	}
}
