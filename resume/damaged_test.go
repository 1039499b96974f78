package resume

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/dlsproject/dls/integration/testimage"
)

// A blob file of the wrong size (truncated on the USB stick, cut by a full disk) is absent
// to fetch: the next run downloads that blob again, and only that one, as dls ls promises.
func TestTruncatedBlobIsFetchedAgain(t *testing.T) {
	fx := newFixture(t)
	idx := testimage.MultiArch(t, testimage.NewRand(t, 12), testimage.MultiArchOptions{
		LayerSizes: []int{50000, 3000},
	})
	idx.Push(t, fx.reg, "team/cut", "v1")
	ref := fx.ref(t, "team/cut:v1")
	fx.fetch(t, Options{}, ref)
	amd64, _ := idx.Image("linux/amd64")
	cut := amd64.Layers[0]
	file := filepath.Join(fx.dir, "blobs", "sha256", cut.Digest().Encoded())
	if err := os.Truncate(file, 100); err != nil {
		t.Fatal(err)
	}

	fx.reg.ResetCounts()
	plan, stats := fx.fetch(t, Options{}, ref)

	if len(plan.Failed) != 0 {
		t.Fatalf("failed images: %v", plan.Failed)
	}
	if n := fx.reg.Requests("GET blob"); n != 1 {
		t.Errorf("blob GETs = %d, want 1 (the truncated layer)", n)
	}
	if stats.BlobsDownloaded != 1 || stats.BytesDownloaded != int64(len(cut.Data)) {
		t.Errorf("downloaded %d blobs, %d bytes; want 1 blob, %d bytes",
			stats.BlobsDownloaded, stats.BytesDownloaded, len(cut.Data))
	}
	if size, ok := fx.store.HasBlob(cut.Digest()); !ok || size != int64(len(cut.Data)) {
		t.Errorf("layer after refetch: %d bytes (present %v), want %d", size, ok, len(cut.Data))
	}
	img, err := fx.store.Image(fx.reg.Host + "/team/cut:v1")
	if err != nil {
		t.Fatal(err)
	}
	if missing := fx.store.Missing(img); len(missing) != 0 {
		t.Errorf("missing after refetch: %v", missing)
	}
}

// A layer changed in place at its own size (a bad copy, a stray write) is no longer the
// file the cache verified, so the next fetch hashes it, finds it corrupt and fetches it
// again; the blobs it did not touch cost no request and no second hash.
func TestCorruptedBlobOfTheRightSizeIsFetchedAgain(t *testing.T) {
	fx := newFixture(t)
	idx := testimage.MultiArch(t, testimage.NewRand(t, 13), testimage.MultiArchOptions{
		LayerSizes: []int{40000, 3000},
	})
	idx.Push(t, fx.reg, "team/flip", "v1")
	ref := fx.ref(t, "team/flip:v1")
	fx.fetch(t, Options{}, ref)
	amd64, _ := idx.Image("linux/amd64")
	flipped := amd64.Layers[0]
	file := filepath.Join(fx.dir, "blobs", "sha256", flipped.Digest().Encoded())
	data := append([]byte(nil), flipped.Data...)
	data[len(data)/2] ^= 0xff
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}

	fx.reg.ResetCounts()
	plan, stats := fx.fetch(t, Options{}, ref)

	if len(plan.Failed) != 0 {
		t.Fatalf("failed images: %v", plan.Failed)
	}
	if n := fx.reg.Requests("GET blob"); n != 1 || stats.BlobsDownloaded != 1 {
		t.Errorf("blob GETs = %d, downloaded %d; want 1 and 1 (the corrupted layer)", n,
			stats.BlobsDownloaded)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(got) != flipped.Digest() {
		t.Errorf("layer after refetch hashes to %s, want %s", digest.FromBytes(got),
			flipped.Digest())
	}
}
