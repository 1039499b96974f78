package integration

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/dlsproject/dls/integration/registrytest"
	"github.com/dlsproject/dls/integration/testimage"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fixtureSeed seeds every random layer of the fixtures; it is logged by testimage.NewRand.
const fixtureSeed = 20260101

// Layer sizes of the fixture images: small, so a whole run moves a few megabytes.
const (
	baseLayerSize  = 64 << 10
	smallLayerSize = 8 << 10
	largeLayerSize = 32 << 10
)

// listImage is one image of a list as pushed to the test registry.
type listImage struct {
	// Name is the fully normalised reference, as in the list: docker.io/rancher/x:tag.
	Name string
	// Repo and Tag are where it lives in the test registry (the mirror of docker.io).
	Repo, Tag string
	// Familiar is the short form docker load prints: rancher/x:tag.
	Familiar string
	Index    testimage.Index
}

// fixture is a registry serving images named after a list, with the files dls needs to
// fetch them through a docker.io mirror.
type fixture struct {
	Reg *registrytest.Registry
	// Images are in list order.
	Images []listImage
	// Hello is the image whose entrypoint is the hello program.
	Hello listImage
	// Host is the platform dls selects by default and the consumers run.
	Host ocispec.Platform
	// Registries is a registries.yaml mirroring docker.io to Reg.
	Registries string
}

// readList returns the references of an image list file, skipping blank and # lines.
func readList(t testing.TB, path string) []string {
	t.Helper()

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var refs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			refs = append(refs, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return refs
}

// hostPlatform is linux on this machine's architecture; the fixtures build amd64 and arm64
// images, so the tests need one of those.
func hostPlatform(t testing.TB) ocispec.Platform {
	t.Helper()

	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Fatalf("the e2e fixtures hold linux/amd64 and linux/arm64 images; host is %s",
			runtime.GOARCH)
	}
	return ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// newFixture pushes a multi-arch image (amd64, arm64 and their attestations) for every
// reference of refs, which must all be docker.io/<path>:<tag>. Every image has 2 or 3
// layers: a base layer per architecture shared by all images, then one or two of its own.
// The image named hello instead gets the hello program on top of the base. Every third image
// is a Docker manifest list, the others OCI indexes.
func newFixture(t testing.TB, refs []string, hello string) *fixture {
	t.Helper()

	fx := &fixture{Reg: registrytest.Start(t, registrytest.Options{}), Host: hostPlatform(t)}
	rng := testimage.NewRand(t, fixtureSeed)
	base := map[string][]testimage.Layer{}
	for _, p := range []ocispec.Platform{testimage.LinuxAMD64, testimage.LinuxARM64} {
		layer := testimage.RandomLayer(t, rng, "base/"+p.Architecture+".bin", baseLayerSize)
		base[testimage.FormatPlatform(p)] = []testimage.Layer{layer}
	}

	for i, ref := range refs {
		img := parseDockerHubRef(t, ref)
		opts := testimage.MultiArchOptions{Base: base, Attestations: true,
			LayerSizes: []int{smallLayerSize}}
		if i%3 == 1 {
			opts.Format = testimage.Docker
		}
		if i%2 == 1 {
			opts.LayerSizes = append(opts.LayerSizes, largeLayerSize)
		}
		if ref == hello {
			opts.LayerSizes, opts.Hello = nil, true
		}

		img.Index = testimage.MultiArch(t, rng, opts)
		img.Index.Push(t, fx.Reg, img.Repo, img.Tag)
		fx.Images = append(fx.Images, img)
		if ref == hello {
			fx.Hello = img
		}
	}
	if hello != "" && fx.Hello.Name == "" {
		t.Fatalf("hello image %s is not among %q", hello, refs)
	}

	fx.Registries = writeRegistries(t, "docker.io", fx.Reg.URL)
	return fx
}

// parseDockerHubRef splits docker.io/<path>:<tag> into the names a listImage needs.
func parseDockerHubRef(t testing.TB, ref string) listImage {
	t.Helper()

	familiar, ok := strings.CutPrefix(ref, "docker.io/")
	i := strings.LastIndex(familiar, ":")
	if !ok || i < 0 || strings.Contains(familiar, "@") {
		t.Fatalf("fixture reference %q: want docker.io/<path>:<tag>", ref)
	}
	return listImage{Name: ref, Repo: familiar[:i], Tag: familiar[i+1:], Familiar: familiar}
}

// writeRegistries writes a registries.yaml that mirrors registry to endpoint, as k3s reads.
func writeRegistries(t testing.TB, registry, endpoint string) string {
	t.Helper()

	path := filepath.Join(t.TempDir(), "registries.yaml")
	yaml := fmt.Sprintf("mirrors:\n  %q:\n    endpoint:\n      - %q\n", registry, endpoint)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// hostBlobs returns every blob a cache needs for the fixture's images on the host platform,
// by digest: each index, all its child manifests, and the host's configs and layers.
func (fx *fixture) hostBlobs() map[digest.Digest]testimage.Blob {
	blobs := map[digest.Digest]testimage.Blob{}
	for _, img := range fx.Images {
		for _, b := range img.Index.BlobsFor(testimage.FormatPlatform(fx.Host)) {
			blobs[b.Digest()] = b
		}
	}
	return blobs
}

// hostImage returns img's child for the host platform.
func (fx *fixture) hostImage(t testing.TB, img listImage) testimage.Image {
	t.Helper()

	child, ok := img.Index.Image(testimage.FormatPlatform(fx.Host))
	if !ok {
		t.Fatalf("%s has no %s image", img.Name, testimage.FormatPlatform(fx.Host))
	}
	return child
}

// names returns the fixture's images as normalised name → index digest, the map index.json
// and containerd must show.
func (fx *fixture) names() map[string]digest.Digest {
	names := map[string]digest.Digest{}
	for _, img := range fx.Images {
		names[img.Name] = img.Index.Index.Digest()
	}
	return names
}
