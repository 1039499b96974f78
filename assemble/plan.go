package assemble

import (
	// Link the hashes go-digest names, so sha256 and sha512 digests validate and verify.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/cache"
)

// Caps on documents read into memory while planning an archive.
const (
	// maxManifestBytes caps a manifest: registries refuse larger ones (distribution's
	// default is 4 MiB), so a bigger blob under a manifest descriptor is not one.
	maxManifestBytes = 4 << 20
	// maxConfigBytes caps an image config: podman refuses configs over 4 MiB; twice that
	// leaves room for images with long histories without trusting an unbounded read.
	maxConfigBytes = 8 << 20
)

// imagePlan is what the archive needs to know about one image.
type imagePlan struct {
	image cache.Image
	name  imageName
	// config and layers are those of the first selected manifest, the one manifest.json
	// describes; diffIDs come from that config, one per layer.
	config  ocispec.Descriptor
	layers  []ocispec.Descriptor
	diffIDs []digest.Digest
}

// manifestDoc is the part of an OCI or Docker schema2 manifest the archive needs. Manifests
// and FSLayers are decoded only to recognise an index or a schema1 manifest.
type manifestDoc struct {
	Config    ocispec.Descriptor   `json:"config"`
	Layers    []ocispec.Descriptor `json:"layers"`
	Manifests json.RawMessage      `json:"manifests"`
	FSLayers  json.RawMessage      `json:"fsLayers"`
}

// configDoc is the part of an image config the archive needs.
type configDoc struct {
	RootFS struct {
		DiffIDs []digest.Digest `json:"diff_ids"`
	} `json:"rootfs"`
}

// planImage reads the first selected manifest of img and its config from src, and checks
// that every document the archive will reference is among img.Blobs, so that no file of
// the archive names a blob the archive lacks.
func planImage(src Source, img cache.Image) (imagePlan, error) {
	name, err := parseImageName(img.Name, img.Target.Digest)
	if err != nil {
		return imagePlan{}, err
	}

	if len(img.Manifests) == 0 {
		return imagePlan{}, fmt.Errorf("plan image %s: no platform manifest was selected; "+
			"fetch it again", img.Name)
	}

	p := imagePlan{image: img, name: name}
	err = p.readManifest(src, img.Manifests[0])
	if err != nil {
		return imagePlan{}, fmt.Errorf("plan image %s: %w", img.Name, err)
	}

	err = p.checkBlobs()
	if err != nil {
		return imagePlan{}, fmt.Errorf("plan image %s: %w", img.Name, err)
	}

	return p, nil
}

// readManifest fills config, layers and diffIDs from the manifest desc and its config.
func (p *imagePlan) readManifest(src Source, desc ocispec.Descriptor) error {
	var m manifestDoc
	err := readJSON(src, desc, maxManifestBytes, &m)
	if err != nil {
		return err
	}

	switch {
	case m.FSLayers != nil:
		return fmt.Errorf("manifest %s is Docker schema 1, which no current loader accepts",
			desc.Digest)
	case m.Manifests != nil:
		return fmt.Errorf("manifest %s is an index; a platform manifest was expected",
			desc.Digest)
	case m.Config.Digest == "":
		return fmt.Errorf("manifest %s has no config", desc.Digest)
	}

	var c configDoc
	err = readJSON(src, m.Config, maxConfigBytes, &c)
	if err != nil {
		return err
	}

	if len(c.RootFS.DiffIDs) != len(m.Layers) {
		return fmt.Errorf("manifest %s has %d layers but config %s has %d diff_ids; "+
			"loaders reject such an image", desc.Digest, len(m.Layers), m.Config.Digest,
			len(c.RootFS.DiffIDs))
	}

	p.config, p.layers, p.diffIDs = m.Config, m.Layers, c.RootFS.DiffIDs
	return nil
}

// checkBlobs fails when a descriptor the archive's metadata points at is not in
// image.Blobs.
func (p *imagePlan) checkBlobs() error {
	have := make(map[digest.Digest]bool, len(p.image.Blobs))
	for _, b := range p.image.Blobs {
		have[b.Digest] = true
	}

	needed := []ocispec.Descriptor{p.image.Target, p.config}
	needed = append(needed, p.image.Children...)
	needed = append(needed, p.image.Manifests...)
	needed = append(needed, p.layers...)
	for _, d := range needed {
		if !have[d.Digest] {
			return fmt.Errorf("%s %s is referenced but not among the image's blobs; "+
				"fetch the image again", d.MediaType, d.Digest)
		}
	}

	return nil
}

// readJSON reads the document desc from src, capped at limit bytes, checks its size and
// digest (Source is an interface: the bytes metadata is derived from are verified here,
// whatever implements it), and decodes it into v.
func readJSON(src Source, desc ocispec.Descriptor, limit int64, v any) error {
	err := desc.Digest.Validate()
	if err != nil {
		return fmt.Errorf("read %s %q: %w", desc.MediaType, desc.Digest, err)
	}

	data, err := src.ReadBlob(desc.Digest, limit)
	if err != nil {
		return fmt.Errorf("read %s %s: %w", desc.MediaType, desc.Digest, err)
	}

	got := desc.Digest.Algorithm().FromBytes(data)
	if got != desc.Digest || int64(len(data)) != desc.Size {
		return fmt.Errorf("read %s %s: %d bytes hashing to %s, descriptor says %d bytes; "+
			"run dls verify: %w", desc.MediaType, desc.Digest, len(data), got, desc.Size,
			cache.ErrCorrupt)
	}

	err = json.Unmarshal(data, v)
	if err != nil {
		return fmt.Errorf("decode %s %s: %w", desc.MediaType, desc.Digest, err)
	}

	return nil
}
