package cache

import (
	"errors"
	"os"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// mustIngest opens an Ingest and checks where it resumes.
func mustIngest(t testing.TB, c *Cache, desc ocispec.Descriptor, wantOffset int64) *Ingest {
	t.Helper()
	w, err := c.Ingest(desc)
	if err != nil {
		t.Fatalf("Ingest(%s): %v", desc.Digest, err)
	}
	if w.Offset() != wantOffset {
		t.Fatalf("Ingest(%s) resumes at %d, want %d", desc.Digest, w.Offset(), wantOffset)
	}

	return w
}

// mustWrite writes p to w completely.
func mustWrite(t testing.TB, w *Ingest, p []byte) {
	t.Helper()
	n, err := w.Write(p)
	if err != nil || n != len(p) {
		t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
	}
}

func TestIngestResumesAfterClose(t *testing.T) {
	rng := newRand(t)
	dir := t.TempDir()
	desc, data := randomBlob(t, rng, 10_000)

	// First run: 3000 bytes, then the cache is closed without a commit.
	c := openCache(t, dir)
	w := mustIngest(t, c, desc, 0)
	mustWrite(t, w, data[:3000])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// Second run: continues at 3000 and commits.
	c = openCache(t, dir)
	w = mustIngest(t, c, desc, 3000)
	mustWrite(t, w, data[3000:])
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close after Commit: %v", err)
	}

	mustReadBlob(t, c, desc.Digest, data)
	if _, err := os.Stat(c.partialPath(desc.Digest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file still there after Commit: %v", err)
	}
}

// An Ingest closed before its first byte leaves no partial file: a run interrupted while
// downloads wait their turn leaves nothing to resume, nor empty files to account for.
func TestIngestClosedEmptyLeavesNoPartial(t *testing.T) {
	rng := newRand(t)
	c := openCache(t, t.TempDir())
	desc, _ := randomBlob(t, rng, 10_000)

	w := mustIngest(t, c, desc, 0)
	if _, err := os.Stat(c.partialPath(desc.Digest)); err != nil {
		t.Fatalf("partial file of an open Ingest: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.partialPath(desc.Digest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty partial file left after Close: %v", err)
	}

	// The digest is free again, and a new Ingest starts from zero.
	w = mustIngest(t, c, desc, 0)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestIngestCorruptPartialIsRemoved(t *testing.T) {
	rng := newRand(t)
	c := openCache(t, t.TempDir())
	desc, data := randomBlob(t, rng, 5000)

	// A partial whose prefix is wrong: the re-hash on open cannot tell, the commit must.
	bad := append([]byte{data[0] ^ 0xff}, data[1:2000]...)
	if err := os.WriteFile(c.partialPath(desc.Digest), bad, 0o644); err != nil {
		t.Fatal(err)
	}

	w := mustIngest(t, c, desc, 2000)
	mustWrite(t, w, data[2000:])
	err := w.Commit()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Commit err = %v; want ErrCorrupt", err)
	}
	wants := []string{"commit blob " + desc.Digest.String(), "expected digest", "got sha256:"}
	for _, want := range wants {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Commit err %q lacks %q", err, want)
		}
	}

	if _, err := os.Stat(c.partialPath(desc.Digest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt partial kept: %v", err)
	}
	if _, ok := c.HasBlob(desc.Digest); ok {
		t.Errorf("corrupt blob landed in blobs/")
	}

	// The next attempt starts from zero and succeeds.
	w = mustIngest(t, c, desc, 0)
	mustWrite(t, w, data)
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit after restart: %v", err)
	}
	mustReadBlob(t, c, desc.Digest, data)
}

func TestIngestLimits(t *testing.T) {
	rng := newRand(t)
	c := openCache(t, t.TempDir())
	desc, data := randomBlob(t, rng, 100)

	t.Run("write past the size", func(t *testing.T) {
		w := mustIngest(t, c, desc, 0)
		defer w.Close()
		mustWrite(t, w, data[:60])
		n, err := w.Write(data[:41])
		want := "exceed its size of 100"
		if n != 0 || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Write = %d, %v; want 0 and ErrCorrupt", n, err)
		}
		if w.Offset() != 60 {
			t.Fatalf("Offset after refused write = %d, want 60", w.Offset())
		}
	})

	t.Run("commit short blob keeps the partial", func(t *testing.T) {
		w := mustIngest(t, c, desc, 60)
		defer w.Close()
		err := w.Commit()
		if err == nil || !strings.Contains(err.Error(), "have 60 of its 100 bytes") {
			t.Fatalf("Commit = %v; want a short-blob error", err)
		}
		mustWrite(t, w, data[60:])
		if err := w.Commit(); err != nil {
			t.Fatalf("Commit after completing: %v", err)
		}
	})

	t.Run("partial longer than the blob starts over", func(t *testing.T) {
		other, otherData := randomBlob(t, rng, 10)
		long := append(otherData, 1, 2, 3)
		if err := os.WriteFile(c.partialPath(other.Digest), long, 0o644); err != nil {
			t.Fatal(err)
		}
		w := mustIngest(t, c, other, 0)
		mustWrite(t, w, otherData)
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("reset drops the bytes held", func(t *testing.T) {
		other, otherData := randomBlob(t, rng, 10)
		w := mustIngest(t, c, other, 0)
		mustWrite(t, w, []byte("garbage"))
		if err := w.Reset(); err != nil {
			t.Fatal(err)
		}
		mustWrite(t, w, otherData)
		if err := w.Commit(); err != nil {
			t.Fatalf("Commit after Reset: %v", err)
		}
	})
}

func TestIngestSameDigestTwice(t *testing.T) {
	rng := newRand(t)
	c := openCache(t, t.TempDir())
	desc, data := randomBlob(t, rng, 100)

	first := mustIngest(t, c, desc, 0)
	_, err := c.Ingest(desc)
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Ingest err = %v; want ErrInUse", err)
	}

	mustWrite(t, first, data)
	if err := first.Commit(); err != nil {
		t.Fatal(err)
	}

	// Once the first has finished, the digest is free again.
	again := mustIngest(t, c, desc, 0)
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestIngestConcurrentDistinctBlobs(t *testing.T) {
	rng := newRand(t)
	c := openCache(t, t.TempDir())
	const n = 8
	descs := make([]ocispec.Descriptor, n)
	datas := make([][]byte, n)
	for i := range n {
		descs[i], datas[i] = randomBlob(t, rng, 3000+i)
	}

	errs := make(chan error, n)
	for i := range n {
		go func() {
			w, err := c.Ingest(descs[i])
			if err == nil {
				_, err = w.Write(datas[i])
			}
			if err == nil {
				err = w.Commit()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}

	indexed, err := c.indexedBlobs()
	if err != nil || len(indexed) != n {
		t.Fatalf("indexed %d blobs (err %v), want %d", len(indexed), err, n)
	}
}
