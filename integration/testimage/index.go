package testimage

import (
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Buildkit's attestation vocabulary (docs.docker.com/build/metadata/attestations).
const (
	AnnotationReferenceType   = "vnd.docker.reference.type"
	AnnotationReferenceDigest = "vnd.docker.reference.digest"
	AttestationManifestType   = "attestation-manifest"
	MediaTypeInToto           = "application/vnd.in-toto+json"
	AnnotationPredicateType   = "in-toto.io/predicate-type"
	PredicateSPDX             = "https://spdx.dev/Document"
)

// IndexOptions describe a multi-platform image.
type IndexOptions struct {
	// Format picks an OCI index or a Docker manifest list. Attestation manifests are OCI
	// manifests in both, as buildkit writes them.
	Format Format
	// Attestations adds, after the images, one attestation manifest per image, the way
	// buildkit does with provenance or SBOM enabled.
	Attestations bool
}

// Index is a multi-platform image: the index document and everything it names.
type Index struct {
	Index  Blob
	Images []Image
	// Attestations are in the order of Images; empty unless asked for.
	Attestations []Attestation
}

// Attestation is a buildkit attestation manifest with its config and in-toto layer. Its
// descriptor in the index has platform unknown/unknown and names the image it describes.
type Attestation struct {
	Manifest  Blob
	Config    Blob
	Statement Blob
}

// NewIndex builds the index listing images in order, then their attestations.
func NewIndex(t testing.TB, opts IndexOptions, images ...Image) Index {
	t.Helper()

	idx := Index{Images: images}
	var descs []ocispec.Descriptor
	for _, img := range images {
		descs = append(descs, img.Manifest.Descriptor)
	}
	if opts.Attestations {
		for _, img := range images {
			att := newAttestation(t, img)
			idx.Attestations = append(idx.Attestations, att)
			descs = append(descs, att.Manifest.Descriptor)
		}
	}

	mediaType := mediaTypes(opts.Format).index
	doc := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: mediaType,
		Manifests: descs,
	}
	idx.Index = newBlob(mediaType, marshal(t, doc))
	return idx
}

// newAttestation writes an in-toto statement about img's manifest as the single layer of an
// OCI manifest, shaped like buildkit's.
func newAttestation(t testing.TB, img Image) Attestation {
	t.Helper()

	statement := map[string]any{
		"_type":         "https://in-toto.io/Statement/v0.1",
		"predicateType": PredicateSPDX,
		"subject": []map[string]any{{
			"name":   "pkg:docker/test@" + img.PlatformString(),
			"digest": map[string]string{"sha256": img.Manifest.Digest().Encoded()},
		}},
		"predicate": map[string]any{"spdxVersion": "SPDX-2.3", "name": "dls test image"},
	}
	var att Attestation
	att.Statement = newBlob(MediaTypeInToto, marshal(t, statement))
	att.Statement.Descriptor.Annotations = map[string]string{
		AnnotationPredicateType: PredicateSPDX}

	unknown := ocispec.Platform{OS: "unknown", Architecture: "unknown"}
	created := Created
	cfg := ocispec.Image{
		Created:  &created,
		Platform: unknown,
		RootFS: ocispec.RootFS{Type: "layers",
			DiffIDs: []digest.Digest{att.Statement.Digest()}},
	}
	att.Config = newBlob(ocispec.MediaTypeImageConfig, marshal(t, cfg))

	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    att.Config.Descriptor,
		Layers:    []ocispec.Descriptor{att.Statement.Descriptor},
	}
	att.Manifest = newBlob(ocispec.MediaTypeImageManifest, marshal(t, m))
	att.Manifest.Descriptor.Platform = &unknown
	att.Manifest.Descriptor.Annotations = map[string]string{
		AnnotationReferenceType:   AttestationManifestType,
		AnnotationReferenceDigest: img.Manifest.Digest().String(),
	}
	return att
}

// Children returns every manifest the index lists, attestations included, in index order.
func (idx Index) Children() []Blob {
	var blobs []Blob
	for _, img := range idx.Images {
		blobs = append(blobs, img.Manifest)
	}
	for _, att := range idx.Attestations {
		blobs = append(blobs, att.Manifest)
	}
	return blobs
}

// Image returns the image for platform ("linux/arm64"), or false when the index has none.
func (idx Index) Image(platform string) (Image, bool) {
	for _, img := range idx.Images {
		if img.PlatformString() == platform {
			return img, true
		}
	}
	return Image{}, false
}

// BlobsFor returns what a cache needs to assemble the index for the given platforms: the
// index, every child manifest (attestations included, so the index stays complete) and the
// configs and layers of the images whose platform is listed. Sorted by digest, each once.
func (idx Index) BlobsFor(platforms ...string) []Blob {
	blobs := appendUnique([]Blob{idx.Index}, idx.Children()...)
	for _, img := range idx.Images {
		if slices.Contains(platforms, img.PlatformString()) {
			blobs = appendUnique(blobs, img.Config)
			blobs = appendUnique(blobs, img.Layers...)
		}
	}
	SortBlobs(blobs)
	return blobs
}

// SortBlobs sorts blobs by digest, the order of blobs in a dls archive.
func SortBlobs(blobs []Blob) {
	slices.SortFunc(blobs, func(a, b Blob) int {
		return strings.Compare(a.Digest().String(), b.Digest().String())
	})
}
