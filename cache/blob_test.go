package cache

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestPutBlobThenRead(t *testing.T) {
	rng := newRand(t)
	c := openCache(t, t.TempDir())
	descs, datas := putBlobs(t, c, rng, 0, 1, 4096, 100_000)

	for i, desc := range descs {
		size, ok := c.HasBlob(desc.Digest)
		if !ok || size != desc.Size {
			t.Errorf("HasBlob(%s) = %d, %v; want %d, true", desc.Digest, size, ok, desc.Size)
		}
		mustReadBlob(t, c, desc.Digest, datas[i])

		fi, err := os.Stat(c.blobPath(desc.Digest))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != blobMode {
			t.Errorf("blob %s has mode %v, want %v", desc.Digest, fi.Mode().Perm(), os.FileMode(blobMode))
		}
	}

	indexed, err := c.indexedBlobs()
	if err != nil {
		t.Fatal(err)
	}
	if len(indexed) != len(descs) {
		t.Errorf("index holds %d blobs, want %d: %v", len(indexed), len(descs), indexed)
	}

	// Storing again is a no-op, not an error.
	if err := c.PutBlob(descs[2], datas[2]); err != nil {
		t.Errorf("PutBlob of a present blob: %v", err)
	}

	entries, _ := os.ReadDir(c.path(partialDir))
	if len(entries) != 0 {
		t.Errorf("partial/ holds %d leftovers after PutBlob", len(entries))
	}
}

func TestPutBlobRejectsBadContent(t *testing.T) {
	rng := newRand(t)
	c := openCache(t, t.TempDir())
	desc, data := randomBlob(t, rng, 64)

	wrongSize := desc
	wrongSize.Size = 65
	wrongDigest := desc
	wrongDigest.Digest = digest.FromString("other")

	tests := []struct {
		name    string
		put     func() error
		wantErr error
		wantMsg string
	}{
		{"short data", func() error { return c.PutBlob(wrongSize, data) }, ErrCorrupt,
			"got 64 bytes, expected 65"},
		{"digest mismatch", func() error { return c.PutBlob(wrongDigest, data) }, ErrCorrupt,
			"content hashes to " + desc.Digest.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.put()
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v; want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
		})
	}

	t.Run("invalid digest", func(t *testing.T) {
		bad := desc
		bad.Digest = "sha256:../../etc/passwd"
		err := c.PutBlob(bad, data)
		if err == nil || !strings.Contains(err.Error(), "put blob") {
			t.Fatalf("err = %v; want a put blob error", err)
		}
	})

	if _, ok := c.HasBlob(desc.Digest); ok {
		t.Errorf("a rejected blob landed in blobs/")
	}
}

func TestReadBlob(t *testing.T) {
	rng := newRand(t)
	c := openCache(t, t.TempDir())
	descs, datas := putBlobs(t, c, rng, 1000)
	d := descs[0].Digest

	t.Run("limit equal to size", func(t *testing.T) {
		mustReadBlob(t, c, d, datas[0])
	})

	t.Run("limit below size", func(t *testing.T) {
		_, err := c.ReadBlob(d, 999)
		want := "larger than the limit of 999 bytes"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v; want %q", err, want)
		}
	})

	t.Run("absent blob", func(t *testing.T) {
		absent := digest.FromString("absent")
		_, err := c.ReadBlob(absent, 10)
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v; want ErrNotFound", err)
		}
		if _, err := c.OpenBlob(absent); !errors.Is(err, ErrNotFound) {
			t.Fatalf("OpenBlob err = %v; want ErrNotFound", err)
		}
	})

	t.Run("bytes flipped on disk", func(t *testing.T) {
		path := c.blobPath(d)
		corrupt := append([]byte{datas[0][0] ^ 1}, datas[0][1:]...)
		overwrite(t, path, corrupt)
		_, err := c.ReadBlob(d, 1000)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), string(d)) {
			t.Fatalf("err = %v; want ErrCorrupt naming %s", err, d)
		}
	})
}
