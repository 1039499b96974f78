package cache

import (
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image names of the fixture.
const (
	nameA = "docker.io/library/alpha:1"
	nameB = "docker.io/library/beta:2"
)

// fixture is a cache holding two images that share one blob, an orphaned blob and a stale
// partial download.
type fixture struct {
	c    *Cache
	dir  string
	a1   ocispec.Descriptor // needed by A only: A's target
	a2   ocispec.Descriptor // needed by A only
	b1   ocispec.Descriptor // needed by B only: B's target
	sh   ocispec.Descriptor // needed by A and B
	orph ocispec.Descriptor // needed by no image
	data map[digest.Digest][]byte
	// stale is the name under partial/ of a download of the orphan, 40 bytes long.
	stale string
}

// newFixture builds a fixture in a new directory.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	rng := newRand(t)
	dir := t.TempDir()
	f := &fixture{c: openCache(t, dir), dir: dir, data: map[digest.Digest][]byte{}}
	descs, datas := putBlobs(t, f.c, rng, 100, 200, 300, 400, 500)
	f.a1, f.a2, f.b1, f.sh, f.orph = descs[0], descs[1], descs[2], descs[3], descs[4]
	for i, d := range descs {
		f.data[d.Digest] = datas[i]
	}

	for _, img := range []Image{f.imageA(), f.imageB()} {
		if err := f.c.PutImage(img); err != nil {
			t.Fatal(err)
		}
	}

	f.stale = partialName(f.orph.Digest)
	if err := os.WriteFile(f.c.path(partialDir, f.stale), datas[4][:40], 0o644); err != nil {
		t.Fatal(err)
	}

	return f
}

// imageA is the record of image A as PutImage stores it.
func (f *fixture) imageA() Image {
	img, _ := normaliseImage(testImage(nameA, f.a1, f.a2, f.sh))
	return img
}

// imageB is the record of image B as PutImage stores it.
func (f *fixture) imageB() Image {
	img, _ := normaliseImage(testImage(nameB, f.b1, f.sh))
	return img
}
