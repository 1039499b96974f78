package assemble

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dlsproject/dls/cache"
)

// The real cache is a Source.
var _ Source = (*cache.Cache)(nil)

// TestWriteFromCache writes every archive case from a real cache opened read-only and
// expects the same bytes as from the directory-backed test source: the two Sources must
// agree.
func TestWriteFromCache(t *testing.T) {
	for _, tc := range archiveCases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSource(t)
			names, want, _ := tc.build(t, s)
			fromTestSource, _ := writeArchive(t, s, quietOptions(names...))

			c := cacheFrom(t, s)
			fromCache, res := writeArchive(t, c, quietOptions(names...))
			if !bytes.Equal(fromCache, fromTestSource) {
				t.Error("the archive from the cache differs from the test source's")
			}
			// Every blob file is the one the cache verified when it entered.
			if res.Hashed != 0 {
				t.Errorf("%d of %d blobs hashed again, want 0", res.Hashed, res.Blobs)
			}

			checkArchive(t, s, fromCache, want)
		})
	}
}

// cacheFrom copies every image of s and the blobs s holds into a new cache, then reopens
// it read-only, as assembling from read-only media does.
func cacheFrom(tb testing.TB, s *testSource) *cache.Cache {
	tb.Helper()
	return cacheIn(tb, s, tb.TempDir())
}

// cacheIn is cacheFrom with the cache in dir.
func cacheIn(tb testing.TB, s *testSource, dir string) *cache.Cache {
	tb.Helper()
	c, err := cache.Open(dir, cache.Options{Logger: quietOptions().Logger})
	if err != nil {
		tb.Fatal(err)
	}

	for _, img := range s.images {
		for _, b := range img.Blobs {
			if _, ok := s.HasBlob(b.Digest); !ok {
				continue
			}

			err = c.PutBlob(b, s.readBlob(tb, b.Digest))
			if err != nil {
				tb.Fatal(err)
			}
		}

		err = c.PutImage(img)
		if err != nil {
			tb.Fatal(err)
		}
	}

	err = c.Close()
	if err != nil {
		tb.Fatal(err)
	}

	c, err = cache.Open(dir, cache.Options{ReadOnly: true, Logger: quietOptions().Logger})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })

	return c
}

// A blob file that is not the one the cache verified is hashed again: every file of a cache
// copied elsewhere (new inodes), and a file changed in place (new ctime), whose corruption
// is then found. Rehash hashes every blob.
func TestWriteHashesFilesTheCacheDidNotVerify(t *testing.T) {
	s := newTestSource(t)
	names, _, _ := buildSharedLayer(t, s)
	c := cacheFrom(t, s)
	want, res := writeArchive(t, c, quietOptions(names...))
	blobs := res.Blobs

	copied := filepath.Join(t.TempDir(), "copy")
	out, err := exec.Command("cp", "-a", c.Dir(), copied).CombinedOutput()
	if err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	cc, err := cache.Open(copied, cache.Options{ReadOnly: true, Logger: quietOptions().Logger})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	got, res := writeArchive(t, cc, quietOptions(names...))
	if !bytes.Equal(got, want) || res.Hashed != blobs {
		t.Errorf("copied cache: %d of %d blobs hashed, same bytes %v; want all, true",
			res.Hashed, blobs, bytes.Equal(got, want))
	}

	opts := quietOptions(names...)
	opts.Rehash = true
	_, res = writeArchive(t, c, opts)
	if res.Hashed != blobs {
		t.Errorf("Rehash: %d of %d blobs hashed, want all", res.Hashed, blobs)
	}

	// Flip one byte of a layer in place, keeping its size.
	img, err := c.Image(names[0])
	if err != nil {
		t.Fatal(err)
	}
	layer := img.Blobs[len(img.Blobs)-1]
	path := filepath.Join(c.Dir(), "blobs", "sha256", layer.Digest.Encoded())
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}

	reopened, err := cache.Open(c.Dir(), cache.Options{ReadOnly: true,
		Logger: quietOptions().Logger})
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	_, err = Write(context.Background(), reopened, io.Discard, quietOptions(names...))
	if !errors.Is(err, cache.ErrCorrupt) || !strings.Contains(err.Error(), string(layer.Digest)) {
		t.Errorf("Write after a byte of %s flipped = %v, want cache.ErrCorrupt naming it",
			layer.Digest, err)
	}
}

// Into a plain archive file, the blobs the cache vouches for are cloned where the file
// system shares extents and copied where it cannot (ext4, tmpfs: the usual TempDir); either
// way the file is byte for byte the stream Write sends to a buffer.
func TestArchiveFileIsTheStream(t *testing.T) {
	for _, tc := range archiveCases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSource(t)
			names, want, _ := tc.build(t, s)
			c := cacheFrom(t, s)
			buffered, _ := writeArchive(t, c, quietOptions(names...))

			path := filepath.Join(t.TempDir(), "images.tar")
			res, err := WriteFile(context.Background(), c, path, quietOptions(names...))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			if res.Hashed != 0 || res.Bytes != int64(len(got)) || !bytes.Equal(got, buffered) {
				t.Errorf("file of %d bytes (%d counted, %d blobs hashed) differs from the "+
					"%d-byte stream", len(got), res.Bytes, res.Hashed, len(buffered))
			}
			checkArchive(t, s, got, want)
		})
	}
}

// Only a regular file is cloned into: a pipe (dls assemble -o - | …) and a buffer are not.
func TestRegularFileOutput(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "images.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	cases := []struct {
		name string
		w    io.Writer
		want *os.File
	}{
		{"file", f, f},
		{"file in a nopCloser", nopCloser{f}, f},
		{"pipe", w, nil},
		{"buffer", &bytes.Buffer{}, nil},
	}
	for _, tc := range cases {
		if got := regularFile(tc.w); got != tc.want {
			t.Errorf("%s: regularFile = %v, want %v", tc.name, got, tc.want)
		}
	}
}
