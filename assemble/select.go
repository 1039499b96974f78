package assemble

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/cache"
)

// selectImages returns the requested images sorted by name, or every image of src when
// names is empty, each narrowed to plats when plats is not empty. It fails with an
// *IncompleteError before anything is written when an image is unknown or lacks blobs,
// listing all such images, not only the first.
func selectImages(src Source, names []string, plats []ocispec.Platform) ([]cache.Image,
	error) {
	images, unknown, err := lookupImages(src, names)
	if err != nil {
		return nil, err
	}

	for i, img := range images {
		images[i], err = narrowPlatforms(src, img, plats)
		if err != nil {
			return nil, err
		}
	}

	if len(images) == 0 && len(unknown) == 0 {
		return nil, errors.New("select images: the cache holds no image; fetch some first")
	}

	shortfalls := make([]Shortfall, 0, len(unknown))
	for _, name := range unknown {
		shortfalls = append(shortfalls, Shortfall{Name: name, Unknown: true})
	}

	for _, img := range images {
		s, err := shortfall(src, img)
		if err != nil {
			return nil, err
		}

		if s.MissingBlobs > 0 {
			shortfalls = append(shortfalls, s)
		}
	}

	if len(shortfalls) > 0 {
		slices.SortFunc(shortfalls, func(a, b Shortfall) int {
			return strings.Compare(a.Name, b.Name)
		})
		return nil, &IncompleteError{Images: shortfalls}
	}

	return images, nil
}

// lookupImages fetches the named images, sorted by name and deduplicated so that the
// archive does not depend on the order the caller listed them in, and lists the names the
// source does not know.
func lookupImages(src Source, names []string) ([]cache.Image, []string, error) {
	if len(names) == 0 {
		images, err := src.Images()
		if err != nil {
			return nil, nil, fmt.Errorf("list cached images: %w", err)
		}

		return sortImages(images), nil, nil
	}

	sorted := slices.Compact(slices.Sorted(slices.Values(names)))
	var images []cache.Image
	var unknown []string
	for _, name := range sorted {
		img, err := src.Image(name)
		if errors.Is(err, cache.ErrNotFound) {
			unknown = append(unknown, name)
			continue
		}

		if err != nil {
			return nil, nil, err // it names the image
		}

		images = append(images, img)
	}

	return sortImages(images), unknown, nil
}

// sortImages orders images by Name, the order every file of the archive lists them in.
func sortImages(images []cache.Image) []cache.Image {
	return slices.SortedFunc(slices.Values(images), func(a, b cache.Image) int {
		return strings.Compare(a.Name, b.Name)
	})
}

// shortfall counts the blobs of img that src lacks. A present blob whose size differs from
// its descriptor is corrupt, not missing: fetching again would not fix it. Digests are
// validated first: they become paths, and go-digest panics on malformed ones.
func shortfall(src Source, img cache.Image) (Shortfall, error) {
	s := Shortfall{Name: img.Name, TotalBlobs: len(img.Blobs)}
	for _, desc := range img.Blobs {
		err := desc.Digest.Validate()
		if err != nil {
			return s, fmt.Errorf("check image %s: blob %q: %w", img.Name, desc.Digest, err)
		}

		s.TotalBytes += desc.Size
		size, ok := src.HasBlob(desc.Digest)
		if !ok {
			s.MissingBlobs++
			s.MissingBytes += desc.Size
			continue
		}

		if size != desc.Size {
			return s, fmt.Errorf("check image %s: blob %s is %d bytes in the cache, "+
				"its descriptor says %d; run dls verify: %w",
				img.Name, desc.Digest, size, desc.Size, cache.ErrCorrupt)
		}
	}

	return s, nil
}
