package integration

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/dlsproject/dls/integration/registrytest"
	"github.com/dlsproject/dls/integration/testimage"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// matrixRepo prefixes every repository of the matrix, so that its names never meet other
// tests' images in the host's shared Docker daemon.
const matrixRepo = "dls-matrix/"

// matrixImage is one reference of a variant's list: what it points at in the registry and
// how every file of the archive, and so every consumer, must name it.
type matrixImage struct {
	// Ref is the line of the image list.
	Ref string
	// Repo is the repository path on Docker Hub, without docker.io/.
	Repo string
	// Name is the io.containerd.image.name annotation and the name containerd gives it.
	Name string
	// RefName is the org.opencontainers.image.ref.name annotation.
	RefName string
	// Familiar is the familiar name:tag docker load prints; "" for a reference by digest only.
	Familiar string
	// Top is the top-level document index.json points at: the index, or the manifest.
	Top testimage.Blob
	// Index is the multi-platform image; nil when Top is a single manifest.
	Index *testimage.Index
	// Main is the platform image manifest.json describes: the first selected platform.
	Main testimage.Image
	// Hello says Main's top layer is the hello program and its entrypoint runs it.
	Hello bool
}

// blobsFor returns what the archive must hold for the image with platforms selected.
func (img matrixImage) blobsFor(platforms []string) []testimage.Blob {
	if img.Index == nil {
		return img.Main.Blobs()
	}
	return img.Index.BlobsFor(platforms...)
}

// matrixBuilder builds and pushes the matrix's images, all from one seeded generator.
type matrixBuilder struct {
	reg  *registrytest.Registry
	rng  *rand.Rand
	host ocispec.Platform
	// other is the second platform of the fixtures: arm64 on an amd64 host and back.
	other ocispec.Platform
}

// platforms returns host then other, the platforms the matrix's indexes hold.
func (b *matrixBuilder) platforms() []ocispec.Platform {
	return []ocispec.Platform{b.host, b.other}
}

// matrixIndexOptions describe a multi-platform image of the matrix.
type matrixIndexOptions struct {
	Format testimage.Format
	// Platforms defaults to host then other.
	Platforms []ocispec.Platform
	// Layers returns the layers of one platform's image, base first; Hello adds the hello
	// program on top.
	Layers func(p ocispec.Platform) []testimage.Layer
	Hello  bool
	// Zstd recompresses every layer with zstd and labels it with the OCI zstd type.
	Zstd bool
}

// index builds an index with attestations from opts.
func (b *matrixBuilder) index(t testing.TB, opts matrixIndexOptions) testimage.Index {
	t.Helper()

	plats := opts.Platforms
	if len(plats) == 0 {
		plats = b.platforms()
	}

	var images []testimage.Image
	for _, p := range plats {
		layers := opts.Layers(p)
		imgOpts := testimage.ImageOptions{Format: opts.Format, Platform: p}
		if opts.Hello {
			layers = append(layers, testimage.HelloLayer(t, p.Architecture))
			imgOpts.Entrypoint = testimage.HelloEntrypoint
		}
		for _, l := range layers {
			if opts.Zstd {
				l = testimage.ZstdLayer(t, l)
			}
			imgOpts.Layers = append(imgOpts.Layers, l)
		}

		img := testimage.NewImage(t, imgOpts)
		if opts.Zstd {
			img = testimage.WithLayerMediaType(t, img, ocispec.MediaTypeImageLayerZstd)
		}
		images = append(images, img)
	}

	idxOpts := testimage.IndexOptions{Format: opts.Format, Attestations: true}
	return testimage.NewIndex(t, idxOpts, images...)
}

// random returns a layers function giving each platform n fresh layers of size bytes.
func (b *matrixBuilder) random(t testing.TB, n, size int) func(ocispec.Platform) []testimage.Layer {
	return func(p ocispec.Platform) []testimage.Layer {
		var layers []testimage.Layer
		for i := range n {
			name := fmt.Sprintf("data/%s-%d.bin", p.Architecture, i)
			layers = append(layers, testimage.RandomLayer(t, b.rng, name, size))
		}
		return layers
	}
}

// pushIndex pushes idx to repo (under matrixRepo) with tag and returns the image a list
// names repo:tag.
func (b *matrixBuilder) pushIndex(t testing.TB, idx testimage.Index, repo, tag string,
	hello bool) matrixImage {
	t.Helper()

	idx.Push(t, b.reg, matrixRepo+repo, tag)
	main, ok := idx.Image(testimage.FormatPlatform(b.host))
	if !ok {
		t.Fatalf("matrix index for %s has no %s image", repo, testimage.FormatPlatform(b.host))
	}
	img := matrixTagged(matrixRepo+repo, tag)
	img.Top, img.Index, img.Main, img.Hello = idx.Index, &idx, main, hello
	return img
}

// pushImage pushes the single-platform image to repo with tag.
func (b *matrixBuilder) pushImage(t testing.TB, main testimage.Image, repo, tag string,
	hello bool) matrixImage {
	t.Helper()

	main.Push(t, b.reg, matrixRepo+repo, tag)
	img := matrixTagged(matrixRepo+repo, tag)
	img.Top, img.Main, img.Hello = main.Manifest, main, hello
	return img
}

// matrixTagged names path:tag of Docker Hub in every form.
func matrixTagged(path, tag string) matrixImage {
	ref := "docker.io/" + path + ":" + tag
	return matrixImage{Ref: ref, Repo: path, Name: ref, RefName: tag,
		Familiar: path + ":" + tag}
}

// matrixPinned turns img into a reference by digest only: no tag anywhere, the digest reference
// as both annotations, nothing in RepoTags.
func matrixPinned(img matrixImage) matrixImage {
	ref := "docker.io/" + img.Repo + "@" + img.Top.Digest().String()
	img.Ref, img.Name, img.RefName, img.Familiar = ref, ref, ref, ""
	return img
}

// matrixTagAndDigest turns img into a name:tag@digest reference, which dls names by its tag.
func matrixTagAndDigest(img matrixImage) matrixImage {
	img.Ref = img.Name + "@" + img.Top.Digest().String()
	return img
}

// matrixTopDigests returns name → top-level digest, what index.json and containerd must show.
func matrixTopDigests(images []matrixImage) map[string]digest.Digest {
	names := map[string]digest.Digest{}
	for _, img := range images {
		names[img.Name] = img.Top.Digest()
	}
	return names
}
