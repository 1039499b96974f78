package assemble

import (
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/cache"
)

// narrowPlatforms returns img reduced to the platform manifests matching want, in the order
// of want, so an archive for one site can be written from a cache fetched for several. The
// index and every child manifest stay (the index must remain complete); only configs and
// layers used by no kept platform leave the blob set. An image fetched without any wanted
// platform is an error naming what it has.
func narrowPlatforms(src Source, img cache.Image, want []ocispec.Platform) (cache.Image,
	error) {
	if len(want) == 0 {
		return img, nil
	}

	var kept, dropped []ocispec.Descriptor
	for _, m := range img.Manifests {
		if m.Platform != nil && slices.ContainsFunc(want, func(p ocispec.Platform) bool {
			return cache.PlatformMatches(p, *m.Platform)
		}) {
			kept = append(kept, m)
		} else {
			dropped = append(dropped, m)
		}
	}
	if len(kept) == 0 {
		return img, fmt.Errorf("image %s was fetched for %s only; fetch it with --platform %s",
			img.Name, formatPlatforms(img.Manifests), cache.FormatPlatform(want[0]))
	}

	keep, err := platformContent(src, kept)
	if err != nil {
		return img, fmt.Errorf("select platforms of %s: %w", img.Name, err)
	}
	drop, err := platformContent(src, dropped)
	if err != nil {
		return img, fmt.Errorf("select platforms of %s: %w", img.Name, err)
	}

	out := img
	out.Manifests = kept
	out.Blobs = slices.DeleteFunc(slices.Clone(img.Blobs), func(d ocispec.Descriptor) bool {
		return drop[d.Digest] && !keep[d.Digest]
	})
	return out, nil
}

// platformContent returns the digests of the configs and layers of the given manifests.
func platformContent(src Source, manifests []ocispec.Descriptor) (map[digest.Digest]bool,
	error) {
	set := map[digest.Digest]bool{}
	for _, desc := range manifests {
		var m manifestDoc
		if err := readJSON(src, desc, maxManifestBytes, &m); err != nil {
			return nil, err
		}

		set[m.Config.Digest] = true
		for _, l := range m.Layers {
			set[l.Digest] = true
		}
	}
	return set, nil
}

func formatPlatforms(manifests []ocispec.Descriptor) string {
	var names []string
	for _, m := range manifests {
		if m.Platform != nil {
			names = append(names, cache.FormatPlatform(*m.Platform))
		}
	}
	return strings.Join(names, ", ")
}
