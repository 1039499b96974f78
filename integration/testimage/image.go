package testimage

import (
	"encoding/json"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker media types (Docker image manifest v2, schema 2). The OCI ones come from ocispec.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// Format selects the media types of manifests, configs, layers and indexes.
type Format int

const (
	// OCI writes OCI image manifests and indexes.
	OCI Format = iota
	// Docker writes Docker schema 2 manifests and manifest lists.
	Docker
)

// Blob is a document or layer together with the descriptor that names it.
type Blob struct {
	Descriptor ocispec.Descriptor
	Data       []byte
}

func newBlob(mediaType string, data []byte) Blob {
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data),
		Size: int64(len(data))}
	return Blob{Descriptor: desc, Data: data}
}

// Digest is the blob's digest.
func (b Blob) Digest() digest.Digest { return b.Descriptor.Digest }

// ImageOptions describe one single-platform image.
type ImageOptions struct {
	Format Format
	// Platform is written to the config and to the manifest's descriptor; the zero value
	// means linux/amd64.
	Platform ocispec.Platform
	// Layers in order, base first.
	Layers     []Layer
	Entrypoint []string
}

// Image is a single-platform image. Manifest.Descriptor carries Platform, ready to be listed
// in an index.
type Image struct {
	Platform ocispec.Platform
	Manifest Blob
	Config   Blob
	// Layers are the compressed blobs in manifest order, with the format's media type.
	Layers  []Blob
	DiffIDs []digest.Digest
}

// NewImage builds the config (with rootfs.diff_ids from the layers) and the manifest.
func NewImage(t testing.TB, opts ImageOptions) Image {
	t.Helper()

	plat := opts.Platform
	if plat.OS == "" {
		plat = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	}
	types := mediaTypes(opts.Format)

	img := Image{Platform: plat}
	for _, l := range opts.Layers {
		img.Layers = append(img.Layers, newBlob(types.layer, l.Data))
		img.DiffIDs = append(img.DiffIDs, l.DiffID)
	}

	created := Created
	cfg := ocispec.Image{
		Created:  &created,
		Platform: plat,
		Config:   ocispec.ImageConfig{Entrypoint: opts.Entrypoint},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: img.DiffIDs},
	}
	img.Config = newBlob(types.config, marshal(t, cfg))

	layerDescs := make([]ocispec.Descriptor, len(img.Layers))
	for i, l := range img.Layers {
		layerDescs[i] = l.Descriptor
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: types.manifest,
		Config:    img.Config.Descriptor,
		Layers:    layerDescs,
	}
	img.Manifest = newBlob(types.manifest, marshal(t, m))
	img.Manifest.Descriptor.Platform = &plat
	return img
}

// PlatformString formats the image's platform as os/arch[/variant].
func (img Image) PlatformString() string { return FormatPlatform(img.Platform) }

// FormatPlatform formats p as os/arch[/variant], the form of dls's --platform flag.
func FormatPlatform(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Blobs returns the manifest, the config and the layers, each once, in that order.
func (img Image) Blobs() []Blob {
	blobs := []Blob{img.Manifest, img.Config}
	return appendUnique(blobs, img.Layers...)
}

type formatTypes struct {
	manifest, index, config, layer string
}

func mediaTypes(f Format) formatTypes {
	if f == Docker {
		return formatTypes{manifest: MediaTypeDockerManifest, index: MediaTypeDockerManifestList,
			config: MediaTypeDockerConfig, layer: MediaTypeDockerLayerGzip}
	}
	return formatTypes{manifest: ocispec.MediaTypeImageManifest,
		index: ocispec.MediaTypeImageIndex, config: ocispec.MediaTypeImageConfig,
		layer: ocispec.MediaTypeImageLayerGzip}
}

func marshal(t testing.TB, v any) []byte {
	t.Helper()

	data, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return data
}

// appendUnique appends each blob of more whose digest dst does not hold yet.
func appendUnique(dst []Blob, more ...Blob) []Blob {
	seen := map[digest.Digest]bool{}
	for _, b := range dst {
		seen[b.Digest()] = true
	}
	for _, b := range more {
		if !seen[b.Digest()] {
			seen[b.Digest()] = true
			dst = append(dst, b)
		}
	}
	return dst
}
