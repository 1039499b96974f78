package assemble

import (
	"fmt"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// imageName is how one image is named in each file of the archive.
type imageName struct {
	// full is io.containerd.image.name: the fully normalised reference.
	full string
	// refName is org.opencontainers.image.ref.name: the tag, or the full reference for an
	// image pinned by digest only (see the package comment for why).
	refName string
	// repoTag is the manifest.json RepoTags entry, fully qualified
	// ("docker.io/library/busybox:1.36"); empty for an image pinned by digest only, because
	// every loader of manifest.json rejects digest references there. docker save writes the
	// familiar form ("busybox:1.36"), but podman's docker-archive reader puts "localhost/"
	// in front of a name without a registry; docker load and go-containerregistry (RKE2's
	// lookup) normalise the full form to the same image.
	repoTag string
	// repo and tag key the repositories file; empty for a digest-only image.
	repo, tag string
}

// parseImageName derives the archive names of the image called name whose top-level
// document is target. A name with both tag and digest is named by its tag: the digest is
// the target's, so the archive already pins it, and loaders want name:tag. A digest in the
// name that is not target's digest is an error: the name would lie about the content.
func parseImageName(name string, target digest.Digest) (imageName, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return imageName{}, fmt.Errorf("parse image name %q: %w", name, err)
	}

	digested, isDigested := named.(reference.Digested)
	if isDigested && digested.Digest() != target {
		return imageName{}, fmt.Errorf("image %s: its name pins %s but its target is %s",
			name, digested.Digest(), target)
	}

	tagged, isTagged := named.(reference.Tagged)
	switch {
	case isTagged:
		return taggedName(reference.TrimNamed(named), tagged.Tag())
	case isDigested:
		return imageName{full: named.String(), refName: named.String()}, nil
	default:
		return imageName{}, fmt.Errorf("image %s: the name has neither tag nor digest; "+
			"loaders need one", name)
	}
}

// taggedName names repo:tag in every file.
func taggedName(repo reference.Named, tag string) (imageName, error) {
	withTag, err := reference.WithTag(repo, tag)
	if err != nil {
		return imageName{}, fmt.Errorf("tag %s with %q: %w", repo, tag, err)
	}

	return imageName{
		full:    withTag.String(),
		refName: tag,
		repoTag: withTag.String(),
		repo:    reference.FamiliarName(withTag),
		tag:     tag,
	}, nil
}
