package testimage

import (
	"fmt"
	"math/rand/v2"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Platforms commonly used by tests.
var (
	LinuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	LinuxARM64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}
)

// MultiArchOptions describe a multi-platform image built by MultiArch.
type MultiArchOptions struct {
	Format Format
	// Platforms in index order; empty means linux/amd64 then linux/arm64.
	Platforms []ocispec.Platform
	// Base holds layers to put first, by platform string ("linux/amd64"). Passing the same
	// Layer to several images shares the blob between them, as a common base image does.
	Base map[string][]Layer
	// LayerSizes adds one layer of random bytes per entry, different for every platform.
	LayerSizes []int
	// Hello adds the hello program for each platform's architecture as the top layer and
	// makes it the entrypoint, so the image runs (see HelloOutput).
	Hello bool
	// Attestations adds buildkit-style attestation manifests (see IndexOptions).
	Attestations bool
}

// MultiArch builds one image per platform from opts, with random data from rng, and the
// index over them.
func MultiArch(t testing.TB, rng *rand.Rand, opts MultiArchOptions) Index {
	t.Helper()

	plats := opts.Platforms
	if len(plats) == 0 {
		plats = []ocispec.Platform{LinuxAMD64, LinuxARM64}
	}

	var images []Image
	for _, p := range plats {
		name := FormatPlatform(p)
		layers := append([]Layer(nil), opts.Base[name]...)
		for i, size := range opts.LayerSizes {
			file := fmt.Sprintf("data/%s-%d.bin", p.Architecture, i)
			layers = append(layers, RandomLayer(t, rng, file, size))
		}

		imgOpts := ImageOptions{Format: opts.Format, Platform: p, Layers: layers}
		if opts.Hello {
			imgOpts.Layers = append(imgOpts.Layers, HelloLayer(t, p.Architecture))
			imgOpts.Entrypoint = HelloEntrypoint
		}
		images = append(images, NewImage(t, imgOpts))
	}

	idxOpts := IndexOptions{Format: opts.Format, Attestations: opts.Attestations}
	return NewIndex(t, idxOpts, images...)
}
