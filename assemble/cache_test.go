package assemble

import (
	"bytes"
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
			fromCache, _ := writeArchive(t, c, quietOptions(names...))
			if !bytes.Equal(fromCache, fromTestSource) {
				t.Error("the archive from the cache differs from the test source's")
			}

			checkArchive(t, s, fromCache, want)
		})
	}
}

// cacheFrom copies every image of s and the blobs s holds into a new cache, then reopens
// it read-only, as assembling from read-only media does.
func cacheFrom(tb testing.TB, s *testSource) *cache.Cache {
	tb.Helper()
	dir := tb.TempDir()
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
