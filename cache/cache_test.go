package cache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestReadOnlyOpenOfANewIndex opens read-only what a first fetch killed before its first
// commit leaves, an index.db recording nothing, and expects an empty cache, not an error.
func TestReadOnlyOpenOfANewIndex(t *testing.T) {
	tests := []struct {
		name  string
		index func(t *testing.T, path string)
	}{
		{"index.db of zero bytes", func(t *testing.T, path string) {
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"index.db bbolt initialised, without buckets", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o644, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.index(t, filepath.Join(dir, dbFile))
			before := listTree(t, dir)

			c := openReadOnly(t, dir)
			images, err := c.Images()
			if err != nil || len(images) != 0 {
				t.Errorf("Images() = %v, %v; want none", images, err)
			}
			if _, err := c.Image(nameA); !errors.Is(err, ErrNotFound) {
				t.Errorf("Image(%s): %v; want ErrNotFound", nameA, err)
			}
			report, err := c.Verify(context.Background(), false)
			if err != nil || !report.Complete() || report.Blobs != 0 {
				t.Errorf("Verify() = %+v, %v; want complete, 0 blobs", report, err)
			}
			if after := listTree(t, dir); !slices.Equal(after, before) {
				t.Errorf("read-only use changed the tree:\n%v\nwas\n%v", after, before)
			}

			// The next writable open initialises the index.
			w := openCache(t, dir)
			if err := w.PutImage(testImage(nameA, descOf([]byte("a")))); err != nil {
				t.Fatal(err)
			}
		})
	}
}
