package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
	"github.com/dlsproject/dls/integration/testimage"
)

// A registries.yaml mirror with a rewrite rule fetches docker.io/rancher/x from the
// mirror's mirrored/rancher/x, as k3s does, while the cache and every file of the archive
// name the image by its original name: a node pulling docker.io/rancher/x must find it.
func TestRewrittenMirrorKeepsOriginalNames(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	idx := testimage.MultiArch(t, testimage.NewRand(t, 41), testimage.MultiArchOptions{
		LayerSizes: []int{2000},
	})
	pushed := idx.Push(t, reg, "mirrored/rancher/klipper-lb", "v0.4.13")

	work := t.TempDir()
	registries := filepath.Join(work, "registries.yaml")
	yaml := fmt.Sprintf("mirrors:\n  docker.io:\n    endpoint: [%q]\n    rewrite:\n"+
		"      \"^rancher/(.*)\": \"mirrored/rancher/$1\"\n", reg.URL)
	if err := os.WriteFile(registries, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(work, "cache")
	const name = "docker.io/rancher/klipper-lb:v0.4.13"

	mustDLS(t, work, "fetch", "--cache", cache, "--registries", registries, "--image",
		"rancher/klipper-lb:v0.4.13")

	if n := reg.Requests("GET manifest"); n == 0 {
		t.Errorf("the mirror served no manifest; the rewrite was not followed")
	}
	ls := mustDLS(t, work, "ls", "--cache", cache)
	if !strings.Contains(ls.Stdout, name) || strings.Contains(ls.Stdout, "mirrored/") {
		t.Errorf("dls ls names:\n%s\nwant %s and no mirrored/ name", ls.Stdout, name)
	}

	archive := filepath.Join(work, "images.tar")
	mustDLS(t, work, "assemble", "--cache", cache, "-o", archive)
	entries := readTar(t, archive)

	var index ocispec.Index
	entryJSON(t, entries, "index.json", &index)
	if len(index.Manifests) != 1 ||
		index.Manifests[0].Annotations[annotationImageName] != name ||
		index.Manifests[0].Digest != pushed {
		t.Errorf("index.json manifests = %+v, want one named %s at %s", index.Manifests,
			name, pushed)
	}
	var items []manifestItem
	entryJSON(t, entries, "manifest.json", &items)
	if len(items) != 1 || !slices.Equal(items[0].RepoTags, []string{name}) {
		t.Errorf("manifest.json = %+v, want RepoTags [%s]", items, name)
	}
	// repositories keeps Docker's familiar names (docs/archive-format.md).
	var repositories map[string]map[string]string
	entryJSON(t, entries, "repositories", &repositories)
	if _, ok := repositories["rancher/klipper-lb"]["v0.4.13"]; !ok || len(repositories) != 1 {
		t.Errorf("repositories = %v, want only rancher/klipper-lb v0.4.13", repositories)
	}
}
