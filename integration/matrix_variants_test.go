package integration

import (
	"testing"

	"github.com/dlsproject/dls/integration/testimage"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The variants of the matrix that need more than one call to build. Each pushes its own
// repositories, so no two variants share a name.

// mixedRefs is a digest-only reference beside a name:tag@digest one: two index.json
// entries, so podman reads manifest.json, where the first has no tag.
func (b *matrixBuilder) mixedRefs(t testing.TB) matrixVariant {
	small := b.random(t, 1, matrixLayerSize)
	pin := matrixPinned(b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: small}),
		"mixed-pinned", "", false))
	both := matrixTagAndDigest(b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: small}),
		"mixed-both", "1", false))
	return matrixVariant{name: "digest-only and tag@digest references",
		images: []matrixImage{pin, both}}
}

// twoTags pushes one index under two tags: two index.json entries with one digest, one
// manifest.json item listing both tags.
func (b *matrixBuilder) twoTags(t testing.TB) matrixVariant {
	idx := b.index(t, matrixIndexOptions{Layers: b.random(t, 1, matrixLayerSize)})
	return matrixVariant{name: "two tags of one image", images: []matrixImage{
		b.pushIndex(t, idx, "tags", "1", false), b.pushIndex(t, idx, "tags", "2", false)}}
}

// oneRepository pushes two different images to one repository.
func (b *matrixBuilder) oneRepository(t testing.TB) matrixVariant {
	small := b.random(t, 1, matrixLayerSize)
	return matrixVariant{name: "two images in one repository", images: []matrixImage{
		b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: small}), "repo", "a", false),
		b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: small}), "repo", "b", false)}}
}

// sharedLayers pushes two images over one base layer and one hello layer per platform;
// the archive must hold each shared blob once.
func (b *matrixBuilder) sharedLayers(t testing.TB) matrixVariant {
	base := map[string]testimage.Layer{}
	for _, p := range b.platforms() {
		base[testimage.FormatPlatform(p)] = testimage.RandomLayer(t, b.rng,
			"base/"+p.Architecture, matrixLayerSize)
	}
	own := b.random(t, 1, matrixLayerSize)
	layers := func(p ocispec.Platform) []testimage.Layer {
		return append([]testimage.Layer{base[testimage.FormatPlatform(p)]}, own(p)...)
	}

	x := b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: layers, Hello: true}), "shared-x",
		"1", true)
	y := b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: layers, Hello: true}), "shared-y",
		"2", true)
	return matrixVariant{name: "shared layers across images", images: []matrixImage{x, y},
		run: y.Name}
}

// repeatedLayer lists one layer twice in each manifest (and its DiffID twice in the
// config), as images that add and remove the same file do.
func (b *matrixBuilder) repeatedLayer(t testing.TB) matrixVariant {
	own := b.random(t, 1, matrixLayerSize)
	layers := func(p ocispec.Platform) []testimage.Layer {
		l := own(p)[0]
		return []testimage.Layer{l, l}
	}
	img := b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: layers, Hello: true}), "repeated",
		"1", true)
	return matrixVariant{name: "repeated layer in one image", images: []matrixImage{img},
		run: img.Name}
}

// zstdLayers pushes an OCI index whose layers are all zstd, hello included.
func (b *matrixBuilder) zstdLayers(t testing.TB) matrixVariant {
	idx := b.index(t, matrixIndexOptions{Layers: b.random(t, 1, matrixLayerSize), Hello: true,
		Zstd: true})
	img := b.pushIndex(t, idx, "zstd", "1", true)
	return matrixVariant{name: "zstd layers", images: []matrixImage{img}, run: img.Name}
}

// deepImage pushes an image of matrixDeepLayers layers, the last one hello.
func (b *matrixBuilder) deepImage(t testing.TB) matrixVariant {
	idx := b.index(t, matrixIndexOptions{Platforms: []ocispec.Platform{b.host},
		Layers: b.random(t, matrixDeepLayers-1, 64), Hello: true})
	img := b.pushIndex(t, idx, "deep", "1", true)
	return matrixVariant{name: "130 layers", images: []matrixImage{img}, run: img.Name}
}

// dockerList pushes a Docker schema 2 manifest list (with buildkit's OCI attestation
// manifests, as Docker Hub serves them).
func (b *matrixBuilder) dockerList(t testing.TB) matrixVariant {
	idx := b.index(t, matrixIndexOptions{Format: testimage.Docker,
		Layers: b.random(t, 1, matrixLayerSize), Hello: true})
	img := b.pushIndex(t, idx, "docker-list", "1", true)
	return matrixVariant{name: "docker schema2 manifest list", images: []matrixImage{img},
		run: img.Name}
}

// singleManifest pushes one image manifest with no index: the top-level document is the
// platform manifest itself.
func (b *matrixBuilder) singleManifest(t testing.TB, name string, format testimage.Format,
	repo string) matrixVariant {
	layers := append(b.random(t, 1, matrixLayerSize)(b.host),
		testimage.HelloLayer(t, b.host.Architecture))
	main := testimage.NewImage(t, testimage.ImageOptions{Format: format, Platform: b.host,
		Layers: layers, Entrypoint: testimage.HelloEntrypoint})
	img := b.pushImage(t, main, repo, "1", true)
	return matrixVariant{name: name, images: []matrixImage{img}, run: img.Name}
}

// dockerBesideOCI pushes a Docker manifest list and an OCI index: two index.json entries
// of different media type families.
func (b *matrixBuilder) dockerBesideOCI(t testing.TB) matrixVariant {
	small := b.random(t, 1, matrixLayerSize)
	list := b.index(t, matrixIndexOptions{Format: testimage.Docker, Layers: small})
	return matrixVariant{name: "docker list beside an OCI index", images: []matrixImage{
		b.pushIndex(t, list, "family-docker", "1", false),
		b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: small}), "family-oci", "2", false)}}
}

// compressed pushes two images (so podman reads manifest.json) written to output.
func (b *matrixBuilder) compressed(t testing.TB, name, repo, output string) matrixVariant {
	small := b.random(t, 1, matrixLayerSize)
	return matrixVariant{name: name, output: output, images: []matrixImage{
		b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: small}), "compressed-"+repo, "a", false),
		b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: small}), "compressed-"+repo, "b", false),
	}}
}

// split pushes two images that only fit one archive each under matrixSplitMax.
func (b *matrixBuilder) split(t testing.TB) matrixVariant {
	big := b.random(t, 1, matrixSplitLayer)
	return matrixVariant{name: "split into two archives", maxSize: matrixSplitMax,
		images: []matrixImage{
			b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: big}), "split-a", "1", false),
			b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: big}), "split-b", "1", false),
		}}
}
