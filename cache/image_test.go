package cache

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPutImageWritesIndexJSON(t *testing.T) {
	rng := newRand(t)
	c := openCache(t, t.TempDir())
	descs, _ := putBlobs(t, c, rng, 10, 20, 30)

	tagged := testImage("docker.io/library/busybox:1.36", descs[0], descs[2])
	pinned := testImage("docker.io/library/alpine@"+descs[1].Digest.String(), descs[1])
	// Recorded out of name order; index.json must come out sorted by name.
	for _, img := range []Image{tagged, pinned} {
		if err := c.PutImage(img); err != nil {
			t.Fatal(err)
		}
	}

	got, err := os.ReadFile(c.path(indexFile))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "DIGEST1",
      "size": 20,
      "annotations": {
        "io.containerd.image.name": "docker.io/library/alpine@DIGEST1",
        "org.opencontainers.image.ref.name": "docker.io/library/alpine@DIGEST1"
      }
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "DIGEST0",
      "size": 10,
      "annotations": {
        "io.containerd.image.name": "docker.io/library/busybox:1.36",
        "org.opencontainers.image.ref.name": "1.36"
      }
    }
  ]
}
`
	want = strings.NewReplacer("DIGEST0", descs[0].Digest.String(),
		"DIGEST1", descs[1].Digest.String()).Replace(want)
	if string(got) != want {
		t.Errorf("index.json =\n%s\nwant\n%s", got, want)
	}
}

func TestImageRecords(t *testing.T) {
	rng := newRand(t)
	c := openCache(t, t.TempDir())
	descs, _ := putBlobs(t, c, rng, 10, 20)
	absent, _ := randomBlob(t, rng, 30)

	img := testImage("example.com/app:1", descs[0], absent, descs[1])
	// Blobs in reverse order and duplicated: PutImage stores them sorted and unique.
	img.Blobs = append(img.Blobs, img.Blobs[0])
	for i, j := 0, len(img.Blobs)-1; i < j; i, j = i+1, j-1 {
		img.Blobs[i], img.Blobs[j] = img.Blobs[j], img.Blobs[i]
	}
	if err := c.PutImage(img); err != nil {
		t.Fatal(err)
	}

	got, err := c.Image("example.com/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Blobs) != 3 {
		t.Fatalf("stored %d blobs, want 3 unique", len(got.Blobs))
	}
	for i := 1; i < len(got.Blobs); i++ {
		if got.Blobs[i-1].Digest >= got.Blobs[i].Digest {
			t.Errorf("stored blobs not sorted: %v", got.Blobs)
		}
	}

	missing := c.Missing(got)
	if len(missing) != 1 || missing[0].Digest != absent.Digest {
		t.Errorf("Missing = %v, want only %s", missing, absent.Digest)
	}

	if _, err := c.Image("example.com/other:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Image of an unknown name: %v; want ErrNotFound", err)
	}

	if err := c.PutImage(Image{Name: "x", Target: ocispec.Descriptor{Digest: "bad"}}); err == nil {
		t.Errorf("PutImage accepted an invalid target digest")
	}

	images, err := c.Images()
	if err != nil || len(images) != 1 || images[0].Name != "example.com/app:1" {
		t.Errorf("Images = %v, %v", images, err)
	}
}

func TestMissingCountsTruncatedBlob(t *testing.T) {
	rng := newRand(t)
	c := openCache(t, t.TempDir())
	descs, datas := putBlobs(t, c, rng, 100)
	overwrite(t, c.blobPath(descs[0].Digest), datas[0][:50])

	img := testImage("example.com/app:1", descs...)
	if missing := c.Missing(img); len(missing) != 1 {
		t.Fatalf("Missing = %v, want the truncated blob", missing)
	}

	// Fetching it again replaces the truncated file.
	w := mustIngest(t, c, descs[0], 0)
	mustWrite(t, w, datas[0])
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	mustReadBlob(t, c, descs[0].Digest, datas[0])
}

func TestPutImagesRecordsAllInOneIndex(t *testing.T) {
	rng := newRand(t)
	c := openCache(t, t.TempDir())
	descs, _ := putBlobs(t, c, rng, 10, 20, 30)
	batch := []Image{
		testImage("example.com/c:1", descs[2]),
		testImage("example.com/a:1", descs[0]),
		testImage("example.com/b:1", descs[1]),
	}

	if err := c.PutImages(batch); err != nil {
		t.Fatal(err)
	}

	images, err := c.Images()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range images {
		names = append(names, img.Name)
	}
	want := []string{"example.com/a:1", "example.com/b:1", "example.com/c:1"}
	if !slices.Equal(names, want) {
		t.Errorf("Images = %v, want %v", names, want)
	}

	var index ocispec.Index
	raw, err := os.ReadFile(filepath.Join(c.Dir(), "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, d := range index.Manifests {
		listed = append(listed, d.Annotations["io.containerd.image.name"])
	}
	if !slices.Equal(listed, want) {
		t.Errorf("index.json names = %v, want %v", listed, want)
	}
}
