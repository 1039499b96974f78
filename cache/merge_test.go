package cache

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// shardCaches builds two caches the way two machines of a split fetch would: both record the
// same images, each holds some of the blobs, and the blob of one image is in both.
func shardCaches(t testing.TB, rng *rand.Rand) (dirA, dirB string, all []ocispec.Descriptor) {
	t.Helper()
	dirA, dirB = t.TempDir(), t.TempDir()
	a, b := openCache(t, dirA), openCache(t, dirB)
	onlyA, _ := putBlobs(t, a, rng, 110, 120)
	onlyB, _ := putBlobs(t, b, rng, 210, 220)
	shared, sharedData := putBlobs(t, a, rng, 330)
	if err := b.PutBlob(shared[0], sharedData[0]); err != nil {
		t.Fatal(err)
	}

	images := []Image{
		testImage("example.com/one:1", onlyA[0], onlyB[0], shared[0]),
		testImage("example.com/two:2", onlyB[1], onlyA[1]),
	}
	for _, c := range []*Cache{a, b} {
		for _, img := range images {
			if err := c.PutImage(img); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}

	return dirA, dirB, slices.Concat(onlyA, onlyB, shared)
}

func TestMergeShards(t *testing.T) {
	dirA, dirB, all := shardCaches(t, newRand(t))
	dst := openCache(t, t.TempDir())

	first, err := dst.Merge(context.Background(), dirA)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Copied) != 3 || first.Bytes != 110+120+330 || first.Present != 0 {
		t.Errorf("merge A: copied %v (%d bytes), %d present", first.Copied, first.Bytes, first.Present)
	}
	wantNames := []string{"example.com/one:1", "example.com/two:2"}
	if !slices.Equal(first.Images, wantNames) {
		t.Errorf("merge A added images %v, want %v", first.Images, wantNames)
	}

	second, err := dst.Merge(context.Background(), dirB)
	if err != nil {
		t.Fatal(err)
	}
	if len(second.Copied) != 2 || second.Present != 1 || len(second.Images) != 0 ||
		len(second.Conflicts) != 0 {
		t.Errorf("merge B = %+v; want 2 copied, 1 present, nothing else", second)
	}

	for _, img := range mustImages(t, dst) {
		if missing := dst.Missing(img); len(missing) != 0 {
			t.Errorf("image %s lacks %v after both merges", img.Name, missing)
		}
	}
	v, err := dst.Verify(context.Background(), false)
	if err != nil || !v.OK() || v.Blobs != len(all) {
		t.Errorf("Verify after merges = %+v, %v", v, err)
	}

	again, err := dst.Merge(context.Background(), dirB)
	want := MergeReport{Present: 3}
	if err != nil || !reflect.DeepEqual(again, want) {
		t.Errorf("merging B twice = %+v, %v; want %+v", again, err, want)
	}
}

func TestMergeOrderDoesNotMatter(t *testing.T) {
	dirA, dirB, _ := shardCaches(t, newRand(t))
	ab, ba := t.TempDir(), t.TempDir()
	for _, run := range []struct{ dst, first, second string }{{ab, dirA, dirB}, {ba, dirB, dirA}} {
		c := openCache(t, run.dst)
		for _, src := range []string{run.first, run.second} {
			if _, err := c.Merge(context.Background(), src); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}

	if treeAB, treeBA := listTree(t, ab), listTree(t, ba); !slices.Equal(treeAB, treeBA) {
		t.Errorf("A+B tree %v differs from B+A tree %v", treeAB, treeBA)
	}
	indexAB, _ := os.ReadFile(filepath.Join(ab, indexFile))
	indexBA, _ := os.ReadFile(filepath.Join(ba, indexFile))
	if string(indexAB) != string(indexBA) {
		t.Errorf("index.json differs:\n%s\nvs\n%s", indexAB, indexBA)
	}
	imagesAB := mustImages(t, openReadOnly(t, ab))
	imagesBA := mustImages(t, openReadOnly(t, ba))
	if !reflect.DeepEqual(imagesAB, imagesBA) {
		t.Errorf("image records differ:\n%+v\nvs\n%+v", imagesAB, imagesBA)
	}
}

func TestMergeConflictKeepsOurs(t *testing.T) {
	rng := newRand(t)
	srcDir := t.TempDir()
	src := openCache(t, srcDir)
	dst := openCache(t, t.TempDir())
	theirs, _ := putBlobs(t, src, rng, 50)
	ours, _ := putBlobs(t, dst, rng, 60)
	const name = "example.com/app:latest"
	if err := src.PutImage(testImage(name, theirs...)); err != nil {
		t.Fatal(err)
	}
	if err := dst.PutImage(testImage(name, ours...)); err != nil {
		t.Fatal(err)
	}

	report, err := dst.Merge(context.Background(), srcDir)
	if err != nil {
		t.Fatal(err)
	}
	want := []MergeConflict{{Name: name, Ours: ours[0].Digest, Theirs: theirs[0].Digest,
		Problem: "different targets"}}
	if !reflect.DeepEqual(report.Conflicts, want) {
		t.Errorf("Conflicts = %+v, want %+v", report.Conflicts, want)
	}
	if img, _ := dst.Image(name); img.Target.Digest != ours[0].Digest {
		t.Errorf("merge replaced our record: target %s", img.Target.Digest)
	}
}

func TestMergeSkipsCorruptSourceBlob(t *testing.T) {
	rng := newRand(t)
	srcDir := t.TempDir()
	src := openCache(t, srcDir)
	descs, _ := putBlobs(t, src, rng, 70, 80)
	flipByte(t, src.blobPath(descs[1].Digest), 5)
	dst := openCache(t, t.TempDir())

	report, err := dst.Merge(context.Background(), srcDir)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), descs[1].Digest.String()) {
		t.Fatalf("Merge err = %v; want ErrCorrupt naming %s", err, descs[1].Digest)
	}
	if len(report.Copied) != 1 || report.Copied[0].Digest != descs[0].Digest {
		t.Errorf("Copied = %v, want only %s", report.Copied, descs[0].Digest)
	}
	if _, ok := dst.HasBlob(descs[1].Digest); ok {
		t.Errorf("corrupt blob landed in blobs/")
	}
	if entries, _ := os.ReadDir(dst.path(partialDir)); len(entries) != 0 {
		t.Errorf("merge left %d partial files", len(entries))
	}
}

func TestUsage(t *testing.T) {
	f := newFixture(t)
	u, err := f.c.Usage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := Usage{Images: 2, Blobs: 5, Bytes: 1500, SharedBytes: 400, OrphanedBytes: 500,
		Partials: 1, PartialBytes: 40}
	if u != want {
		t.Errorf("Usage = %+v, want %+v", u, want)
	}
}

// mustImages lists the images of c.
func mustImages(t testing.TB, c *Cache) []Image {
	t.Helper()
	images, err := c.Images()
	if err != nil {
		t.Fatal(err)
	}

	return images
}

// Two caches holding one index fetched for different platforms merge into one record with
// both platforms, in the index's order, whichever cache is merged into which.
func TestMergeWidensPlatformsOfOneIndex(t *testing.T) {
	rng := newRand(t)
	// index, amd64 manifest, arm64 manifest, amd64 layer, arm64 layer
	descs, datas := putBlobs(t, openCache(t, t.TempDir()), rng, 300, 200, 210, 1000, 1100)
	index, amd64, arm64, layerA, layerB := descs[0], descs[1], descs[2], descs[3], descs[4]
	index.MediaType = ocispec.MediaTypeImageIndex
	amd64.MediaType, arm64.MediaType = ocispec.MediaTypeImageManifest,
		ocispec.MediaTypeImageManifest
	amd64.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64"}
	const name = "example.com/multi:1"
	record := func(m, layer ocispec.Descriptor) Image {
		return Image{Name: name, Target: index, Manifests: []ocispec.Descriptor{m},
			Children: []ocispec.Descriptor{amd64, arm64},
			Blobs:    []ocispec.Descriptor{index, amd64, arm64, layer}}
	}
	shard := func(img Image) string {
		dir := t.TempDir()
		c := openCache(t, dir)
		for i, d := range descs {
			if slices.ContainsFunc(img.Blobs, func(b ocispec.Descriptor) bool {
				return b.Digest == d.Digest
			}) {
				if err := c.PutBlob(ocispec.Descriptor{Digest: d.Digest, Size: d.Size}, datas[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := c.PutImage(img); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	var merged []Image
	for _, order := range [][2]Image{
		{record(amd64, layerA), record(arm64, layerB)},
		{record(arm64, layerB), record(amd64, layerA)},
	} {
		dst := openCache(t, shard(order[0]))
		report, err := dst.Merge(context.Background(), shard(order[1]))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(report.Widened, []string{name}) || len(report.Conflicts) != 0 {
			t.Errorf("report: widened %v, conflicts %v; want %s widened, no conflict",
				report.Widened, report.Conflicts, name)
		}

		img, err := dst.Image(name)
		if err != nil {
			t.Fatal(err)
		}
		if missing := dst.Missing(img); len(missing) != 0 {
			t.Errorf("widened image lacks %v", missing)
		}
		merged = append(merged, img)
	}

	want := []digest.Digest{amd64.Digest, arm64.Digest}
	for i, img := range merged {
		got := []digest.Digest{}
		for _, m := range img.Manifests {
			got = append(got, m.Digest)
		}
		if !slices.Equal(got, want) || len(img.Blobs) != 5 {
			t.Errorf("order %d: manifests %v, %d blobs; want %v (index order), 5", i, got,
				len(img.Blobs), want)
		}
	}
	if !reflect.DeepEqual(merged[0], merged[1]) {
		t.Errorf("the two merge orders recorded different images:\n%+v\n%+v", merged[0],
			merged[1])
	}
}
