package integration

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dlsproject/dls/integration/registrytest"
)

// Two images of the k3s list, enough for the failure tests.
var smallList = []string{
	"docker.io/rancher/mirrored-pause:3.6",
	"docker.io/rancher/klipper-lb:v0.4.13",
}

func TestFetchInvalidLinesNamesFileAndLine(t *testing.T) {
	fx := newFixture(t, smallList, "")
	work := t.TempDir()
	writeFile(t, work, "bad.txt", "# two bad lines among good ones\n"+
		smallList[0]+"\n"+
		"docker.io/rancher/Mirrored-Pause:3.6\n"+
		"\n"+
		"docker.io/rancher/klipper-lb:v0.4.13:extra\n")

	res := runDLS(t, work, "fetch", "--cache", filepath.Join(work, "cache"),
		"--registries", fx.Registries, "bad.txt")
	// 2, as for a bad flag: scripts tell bad input from images that failed (1).
	if res.Code != 2 {
		t.Fatalf("dls fetch of a list with invalid lines: exit %d, want 2", res.Code)
	}
	if _, err := os.Stat(filepath.Join(work, "cache")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cache directory after a rejected list: %v; want none created", err)
	}
	for _, want := range []string{"bad.txt:3", "bad.txt:5"} {
		if !strings.Contains(res.Stderr, want) {
			t.Errorf("stderr does not name %s:\n%s", want, res.Stderr)
		}
	}
}

func TestFetchUnknownImageKeepsTheOthers(t *testing.T) {
	fx := newFixture(t, smallList, "")
	work := t.TempDir()
	cache := filepath.Join(work, "cache")
	const unknown = "docker.io/rancher/never-pushed:1.0"
	list := writeFile(t, work, "list.txt", strings.Join(append(smallList, unknown), "\n"))

	// One retry keeps the test fast: without internet, dls falls back from the mirror's 404
	// to Docker Hub, whose name does not resolve.
	res := runDLS(t, work, "fetch", "--cache", cache, "--registries", fx.Registries,
		"--retries=1", "--json", list)
	if res.Code == 0 {
		t.Fatalf("dls fetch with an unknown image: exit 0, want non-zero")
	}
	if !strings.Contains(res.Stderr, "rancher/never-pushed:1.0") {
		t.Errorf("stderr does not name rancher/never-pushed:1.0:\n%s", res.Stderr)
	}
	if got := decodeSummary(t, res.Stdout); got.Images != 3 || got.ImagesFailed != 1 {
		t.Errorf("summary = %+v, want 3 images, 1 failed", got)
	}

	cached := cachedBlobs(t, cache)
	for d, b := range fx.hostBlobs() {
		if !cached[d] {
			t.Errorf("cache lacks %s %s of a good image", b.Descriptor.MediaType, d)
		}
	}
	ls := runDLS(t, work, "ls", "--cache", cache)
	for _, img := range fx.Images {
		if ls.Code != 0 || !strings.Contains(ls.Stdout, img.Name) {
			t.Errorf("dls ls (exit %d) does not list %s:\n%s", ls.Code, img.Name, ls.Stdout)
		}
	}
}

// TestFetchRegistryDownLosesNothing fetches a good image, then an image from a registry that
// refuses connections into the same cache: the run fails naming the registry and the cache
// keeps every blob and image it had. The down registry is named directly (not through the
// docker.io mirror) so that no fallback to Docker Hub can reach the internet.
func TestFetchRegistryDownLosesNothing(t *testing.T) {
	fx := newFixture(t, smallList[:1], "")
	work := t.TempDir()
	cache := filepath.Join(work, "cache")
	good := writeFile(t, work, "good.txt", smallList[0]+"\n")
	if res := runDLS(t, work, "fetch", "--cache", cache, "--registries", fx.Registries,
		good); res.Code != 0 {
		t.Fatalf("dls fetch %s: exit %d, want 0", smallList[0], res.Code)
	}
	before := cachedBlobs(t, cache)

	down := registrytest.Unreachable(t)
	registries := writeRegistries(t, down, "http://"+down)
	list := writeFile(t, work, "down.txt", down+"/rancher/mirrored-pause:3.6\n")
	// One retry keeps the test fast; what is under test is the failure, not the backoff.
	res := runDLS(t, work, "fetch", "--cache", cache, "--registries", registries,
		"--retries=1", list)
	if res.Code == 0 {
		t.Fatalf("dls fetch from %s (down): exit 0, want non-zero", down)
	}
	if !strings.Contains(res.Stderr, down) {
		t.Errorf("stderr does not name the registry %s:\n%s", down, res.Stderr)
	}

	if after := cachedBlobs(t, cache); !maps.Equal(after, before) {
		t.Errorf("cache blobs changed: %d before, %d after", len(before), len(after))
	}
	ls := runDLS(t, work, "ls", "--cache", cache)
	if ls.Code != 0 || !strings.Contains(ls.Stdout, smallList[0]) {
		t.Errorf("dls ls (exit %d) no longer lists %s:\n%s", ls.Code, smallList[0], ls.Stdout)
	}
	out := filepath.Join(work, "good.tar")
	if res := runDLS(t, work, "assemble", "-o", out, "--cache", cache, good); res.Code != 0 {
		t.Errorf("dls assemble %s after the failed fetch: exit %d, want 0",
			smallList[0], res.Code)
	}
}
