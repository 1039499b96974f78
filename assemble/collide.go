package assemble

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// mergeSameNames folds together images that the archive would name alike. Two cache images
// can: "busybox:1.37" and "busybox:1.37@sha256:…" are both named busybox:1.37 in index.json,
// manifest.json and repositories, since a loader wants name:tag. Written twice, that name
// would be two index.json entries and two RepoTags: docker load keeps whichever comes last
// and Inspect reports the archive as defective.
//
// Images of the same name and top-level document are one image: they become the first (in
// name order), carrying the platforms both were fetched for. Images of the same name and
// different documents are an error naming both, returned before anything is written, since
// no choice between them would be right. plans are sorted by image name; so is the result.
func mergeSameNames(plans []imagePlan, log *slog.Logger) ([]imagePlan, error) {
	merged := make([]imagePlan, 0, len(plans))
	byName := map[string]int{}
	for _, p := range plans {
		i, seen := byName[p.name.full]
		if !seen {
			byName[p.name.full] = len(merged)
			merged = append(merged, p)
			continue
		}

		first := merged[i]
		if first.image.Target.Digest != p.image.Target.Digest {
			return nil, fmt.Errorf("select images: %s (%s) and %s (%s) would both be named "+
				"%s in the archive, for different content, and loaders keep only one; "+
				"assemble only one of them: pass an image list or --image naming just that one",
				first.image.Name, first.image.Target.Digest, p.image.Name,
				p.image.Target.Digest, p.name.full)
		}

		log.Info("two cached images name the same content; writing it once",
			"image", first.image.Name, "same", p.image.Name)
		merged[i] = mergePlans(first, p)
	}

	return merged, nil
}

// mergePlans is a with the manifests and blobs of b added; both have the same target, so
// the same children. a's first manifest stays first: manifest.json describes it.
func mergePlans(a, b imagePlan) imagePlan {
	out := a
	out.image.Manifests = slices.Clone(a.image.Manifests)
	for _, m := range b.image.Manifests {
		if !slices.ContainsFunc(out.image.Manifests, func(d ocispec.Descriptor) bool {
			return d.Digest == m.Digest
		}) {
			out.image.Manifests = append(out.image.Manifests, m)
		}
	}

	// Blobs stay sorted by digest with no duplicates, as cache.Image promises.
	blobs := slices.Concat(a.image.Blobs, b.image.Blobs)
	slices.SortStableFunc(blobs, func(x, y ocispec.Descriptor) int {
		return strings.Compare(string(x.Digest), string(y.Digest))
	})
	out.image.Blobs = slices.CompactFunc(blobs, func(x, y ocispec.Descriptor) bool {
		return x.Digest == y.Digest
	})
	return out
}
