package resume

import (
	"encoding/json"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of the documents dls walks. Docker's schema 2 types and OCI's have the same
// JSON shape, so one decoder reads both.
const (
	mediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
)

// maxConfigSize caps an image config read into memory. Real configs are a few kilobytes;
// the largest seen in the wild (long build histories) stay well under a megabyte.
const maxConfigSize = 8 << 20

// document is the part of a manifest or index that the fetch stage needs.
type document struct {
	MediaType string               `json:"mediaType"`
	Config    *ocispec.Descriptor  `json:"config"`
	Layers    []ocispec.Descriptor `json:"layers"`
	Manifests []ocispec.Descriptor `json:"manifests"`
}

// parseDocument decodes raw manifest bytes whose transport media type is mediaType.
func parseDocument(mediaType string, raw []byte) (document, error) {
	var doc document
	if err := json.Unmarshal(raw, &doc); err != nil {
		return doc, fmt.Errorf("decode %s: %w", mediaType, err)
	}

	if doc.MediaType == "" {
		doc.MediaType = mediaType
	}
	if isIndex(doc.MediaType) || doc.Manifests != nil {
		if doc.Config != nil {
			return doc, fmt.Errorf("decode %s: document has both manifests and config",
				mediaType)
		}
		return doc, nil
	}

	if doc.Config == nil {
		return doc, fmt.Errorf("decode %s: manifest has no config", mediaType)
	}
	return doc, nil
}

func (d document) isIndex() bool {
	return isIndex(d.MediaType) || d.Manifests != nil
}

func isIndex(mediaType string) bool {
	return mediaType == ocispec.MediaTypeImageIndex || mediaType == mediaTypeDockerList
}

// isManifest reports whether mediaType is a manifest or index rather than a config or layer.
func isManifest(mediaType string) bool {
	switch mediaType {
	case ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
		mediaTypeDockerManifest, mediaTypeDockerList:
		return true
	}
	return false
}

// isAttestation reports whether an index entry is a buildkit attestation manifest rather
// than a runnable image: those carry the platform unknown/unknown.
func isAttestation(desc ocispec.Descriptor) bool {
	if desc.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
		return true
	}
	return desc.Platform != nil && desc.Platform.OS == "unknown" &&
		desc.Platform.Architecture == "unknown"
}

// imageConfig is the part of an image config that dls checks.
type imageConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant"`
	RootFS       struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}
