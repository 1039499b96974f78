package resume

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/dlsproject/dls/integration/testimage"
)

// A damaged blob file is absent to fetch: the next run downloads that blob again, and only
// that one. A file of the wrong size (truncated on the USB stick, cut by a full disk) fails
// the size check; one changed in place at its own size is no longer the file the cache
// verified, so fetch hashes it and finds it corrupt. The blobs nobody touched cost no
// request and no second hash.
func TestDamagedBlobIsFetchedAgain(t *testing.T) {
	for i, tc := range []struct {
		name   string
		damage func(path string, data []byte) error
	}{
		{"truncated", func(path string, _ []byte) error { return os.Truncate(path, 100) }},
		{"one byte flipped, same size", func(path string, data []byte) error {
			flipped := append([]byte(nil), data...)
			flipped[len(flipped)/2] ^= 0xff
			if err := os.Chmod(path, 0o644); err != nil {
				return err
			}
			return os.WriteFile(path, flipped, 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			idx := testimage.MultiArch(t, testimage.NewRand(t, uint64(12+i)),
				testimage.MultiArchOptions{LayerSizes: []int{50000, 3000}})
			idx.Push(t, fx.reg, "team/damaged", "v1")
			ref := fx.ref(t, "team/damaged:v1")
			fx.fetch(t, Options{}, ref)
			amd64, _ := idx.Image("linux/amd64")
			layer := amd64.Layers[0]
			file := filepath.Join(fx.dir, "blobs", "sha256", layer.Digest().Encoded())
			if err := tc.damage(file, layer.Data); err != nil {
				t.Fatal(err)
			}

			fx.reg.ResetCounts()
			plan, stats := fx.fetch(t, Options{}, ref)

			if len(plan.Failed) != 0 {
				t.Fatalf("failed images: %v", plan.Failed)
			}
			if n := fx.reg.Requests("GET blob"); n != 1 {
				t.Errorf("blob GETs = %d, want 1 (the damaged layer)", n)
			}
			if stats.BlobsDownloaded != 1 || stats.BytesDownloaded != int64(len(layer.Data)) {
				t.Errorf("downloaded %d blobs, %d bytes; want 1 blob, %d bytes",
					stats.BlobsDownloaded, stats.BytesDownloaded, len(layer.Data))
			}
			got, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if digest.FromBytes(got) != layer.Digest() {
				t.Errorf("layer after refetch hashes to %s, want %s", digest.FromBytes(got),
					layer.Digest())
			}
			img, err := fx.store.Image(fx.reg.Host + "/team/damaged:v1")
			if err != nil {
				t.Fatal(err)
			}
			if missing := fx.store.Missing(img); len(missing) != 0 {
				t.Errorf("missing after refetch: %v", missing)
			}
		})
	}
}
