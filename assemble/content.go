package assemble

import (
	"fmt"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxManifestJSON is the largest manifest.json written: podman's docker-archive reader
// refuses bigger ones (containerd's importer allows 20 MiB).
const maxManifestJSON = 1 << 20

// metaFile is one metadata file of an archive.
type metaFile struct {
	name string
	data []byte
}

// content is everything one archive holds.
type content struct {
	images []imagePlan
	// files are the metadata files in archive order: oci-layout, index.json,
	// manifest.json, then repositories when any image is tagged.
	files []metaFile
	// blobs is the union of the images' blobs, each once, sorted by digest.
	blobs []ocispec.Descriptor
	// blobBytes is the sum of the blobs' sizes.
	blobBytes int64
}

// newContent builds the metadata and blob list of an archive holding images, which are
// sorted by name.
func newContent(images []imagePlan) (content, error) {
	c := content{images: images}
	index, err := indexJSON(images)
	if err != nil {
		return c, err
	}

	manifest, err := manifestJSON(images)
	if err != nil {
		return c, err
	}

	repositories, err := repositoriesJSON(images)
	if err != nil {
		return c, err
	}

	c.files = []metaFile{
		{name: "oci-layout", data: []byte(ociLayoutFile)},
		{name: "index.json", data: index},
		{name: "manifest.json", data: manifest},
	}
	if repositories != nil {
		c.files = append(c.files, metaFile{name: "repositories", data: repositories})
	}

	c.blobs, err = unionBlobs(images)
	if err != nil {
		return c, err
	}

	for _, b := range c.blobs {
		c.blobBytes += b.Size
	}

	return c, nil
}

// manifestSize is the size of the archive's manifest.json.
func (c content) manifestSize() int {
	for _, f := range c.files {
		if f.name == "manifest.json" {
			return len(f.data)
		}
	}

	return 0
}

// unionBlobs merges the images' blobs, sorted by digest so that blob order in the archive
// never depends on which image needed a blob first. Every digest is validated here, since
// it becomes a path in the archive. Two descriptors of one digest with different sizes
// mean a broken cache record.
func unionBlobs(images []imagePlan) ([]ocispec.Descriptor, error) {
	var all []ocispec.Descriptor
	for _, p := range images {
		all = append(all, p.image.Blobs...)
	}

	slices.SortStableFunc(all, func(a, b ocispec.Descriptor) int {
		return strings.Compare(string(a.Digest), string(b.Digest))
	})
	union := make([]ocispec.Descriptor, 0, len(all))
	for _, d := range all {
		err := d.Digest.Validate()
		if err != nil {
			return nil, fmt.Errorf("list blobs: %q: %w", d.Digest, err)
		}

		n := len(union)
		if n > 0 && union[n-1].Digest == d.Digest {
			if union[n-1].Size != d.Size {
				return nil, fmt.Errorf("list blobs: %s is described as %d and %d bytes",
					d.Digest, union[n-1].Size, d.Size)
			}
			continue
		}

		union = append(union, d)
	}

	return union, nil
}
