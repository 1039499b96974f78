package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/registrytest"
)

// indexEvery makes every indexEvery-th image a linux/amd64 + linux/arm64 index; the others
// are single manifests. The arm64 side has one small own layer that no fetch here needs.
const indexEvery = 5

// blobRef is one distinct blob a linux/amd64 fetch of the corpus needs, and a repository
// that holds it.
type blobRef struct {
	repo string
	desc ocispec.Descriptor
	// manifest says the blob is a manifest or index, fetched from /manifests/ (a registry
	// need not serve manifests from /blobs/); tag is set on an image's top-level document,
	// which a fetch gets by that tag.
	manifest bool
	tag      string
}

// corpus is what was pushed to the registry.
type corpus struct {
	// tags are the images as "repo:tag" paths, without the registry host, in list order.
	tags []string
	// needed is every distinct blob a linux/amd64 fetch of all tags transfers: top-level
	// documents, every child manifest of an index, configs and layers.
	needed []blobRef
	// layers counts the distinct layers pushed for linux/amd64; compressible of them are
	// uncompressed text.
	layers, compressible int
	smallest, largest    int64
}

// uniqueBytes is the sum of the sizes of the needed blobs: what an ideal fetch moves.
func (c *corpus) uniqueBytes() int64 {
	var n int64
	for _, b := range c.needed {
		n += b.desc.Size
	}
	return n
}

// corpusBuilder pushes layers and images to a registry as it builds them, keeping only
// descriptors, so the corpus never has to fit in memory.
type corpusBuilder struct {
	tb     *benchTB
	reg    *registrytest.Registry
	src    *rand.ChaCha8
	c      *corpus
	seen   map[digest.Digest]bool
	images [][]builtLayer // per image: its amd64 layers in order, data dropped
}

// buildCorpus pushes images images whose distinct linux/amd64 bytes are about total.
func buildCorpus(tb *benchTB, reg *registrytest.Registry, images int, total int64,
	seed uint64) (*corpus, error) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var key [32]byte
	copy(key[:], fmt.Sprintf("dls-bench-%d", seed))
	b := &corpusBuilder{tb: tb, reg: reg, src: rand.NewChaCha8(key), c: &corpus{},
		seen: map[digest.Digest]bool{}, images: make([][]builtLayer, images)}
	for i := range images {
		b.c.tags = append(b.c.tags, fmt.Sprintf("%s:v1", repoName(i)))
	}

	for _, p := range planLayers(rng, images, total) {
		if err := b.pushLayer(p); err != nil {
			return nil, err
		}
	}
	for i := range images {
		if err := b.pushImage(i); err != nil {
			return nil, err
		}
	}
	return b.c, nil
}

func repoName(i int) string { return fmt.Sprintf("bench/app-%02d", i) }

// pushLayer builds one layer, pushes it to its first user's repository and mounts it into
// the others', as a registry holding shared base layers does.
func (b *corpusBuilder) pushLayer(p layerPlan) error {
	l, err := buildLayer(b.src, p)
	if err != nil {
		return err
	}

	first := repoName(p.users[0])
	b.reg.PushBlob(b.tb, first, l.data)
	for _, u := range p.users[1:] {
		if err := mountBlob(b.reg.URL, repoName(u), first, l.desc.Digest); err != nil {
			return err
		}
	}

	b.need(blobRef{repo: first, desc: l.desc})
	b.c.layers++
	if p.compressible {
		b.c.compressible++
	}
	if b.c.smallest == 0 || l.desc.Size < b.c.smallest {
		b.c.smallest = l.desc.Size
	}
	b.c.largest = max(b.c.largest, l.desc.Size)
	l.data = nil
	for _, u := range p.users {
		b.images[u] = append(b.images[u], l)
	}
	return nil
}

// need records a blob of the linux/amd64 fetch, once per digest.
func (b *corpusBuilder) need(ref blobRef) {
	if b.seen[ref.desc.Digest] {
		return
	}
	b.seen[ref.desc.Digest] = true
	b.c.needed = append(b.c.needed, ref)
}

// mountBlob links blob d of repository from into repo, the distribution API's cross-repo
// mount, so shared layers are stored and pushed once.
func mountBlob(base, repo, from string, d digest.Digest) error {
	q := url.Values{"mount": {d.String()}, "from": {from}}
	resp, err := http.Post(base+"/v2/"+repo+"/blobs/uploads/?"+q.Encode(), "", nil)
	if err != nil {
		return fmt.Errorf("mount blob %s into %s: %w", d, repo, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("mount blob %s into %s: status %s", d, repo, resp.Status)
	}
	return nil
}

// pushImage pushes image i's config and manifest tagged v1, or, for every indexEvery-th
// image, both platforms' manifests by digest and the index naming them tagged v1.
func (b *corpusBuilder) pushImage(i int) error {
	repo, tag, _ := strings.Cut(b.c.tags[i], ":")
	amd64 := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	if i%indexEvery != indexEvery-1 {
		desc, err := b.pushManifest(repo, tag, i, amd64, b.images[i], true)
		b.need(blobRef{repo: repo, desc: withoutPlatform(desc), manifest: true, tag: tag})
		return err
	}

	manifest, err := b.pushManifest(repo, "", i, amd64, b.images[i], true)
	if err != nil {
		return err
	}
	l, err := buildLayer(b.src, layerPlan{size: 64 << 10, users: []int{i}})
	if err != nil {
		return err
	}
	b.reg.PushBlob(b.tb, repo, l.data)
	arm64 := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	other, err := b.pushManifest(repo, "", i, arm64, []builtLayer{l}, false)
	if err != nil {
		return err
	}

	index := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{manifest, other}}
	data, desc, err := document(ocispec.MediaTypeImageIndex, index)
	if err != nil {
		return err
	}
	b.reg.PushManifest(b.tb, repo, tag, desc.MediaType, data)
	b.need(blobRef{repo: repo, desc: desc, manifest: true, tag: tag})
	b.need(blobRef{repo: repo, desc: withoutPlatform(manifest), manifest: true})
	b.need(blobRef{repo: repo, desc: withoutPlatform(other), manifest: true})
	return nil
}

// pushManifest pushes the config and the manifest of image i for platform over layers,
// which must be in repo already; the manifest goes under tag, or by digest when tag is "".
// When needed, the config (and the layers, already recorded) belong to the amd64 fetch.
// It returns the manifest's descriptor with its platform, as an index lists it.
func (b *corpusBuilder) pushManifest(repo, tag string, i int, platform ocispec.Platform,
	layers []builtLayer, needed bool) (ocispec.Descriptor, error) {
	cfg := ocispec.Image{Created: &created, Platform: platform,
		Config: ocispec.ImageConfig{Entrypoint: []string{"/data/blob.bin"},
			Labels: map[string]string{"bench.image": repoName(i)}},
		RootFS: ocispec.RootFS{Type: "layers"}}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
		m.Layers = append(m.Layers, l.desc)
	}

	cfgData, cfgDesc, err := document(ocispec.MediaTypeImageConfig, cfg)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	b.reg.PushBlob(b.tb, repo, cfgData)
	if needed {
		b.need(blobRef{repo: repo, desc: cfgDesc})
	}

	m.Config = cfgDesc
	data, desc, err := document(ocispec.MediaTypeImageManifest, m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	ref := tag
	if ref == "" {
		ref = desc.Digest.String()
	}
	b.reg.PushManifest(b.tb, repo, ref, desc.MediaType, data)
	desc.Platform = &platform
	return desc, nil
}

// document marshals v and returns its bytes and descriptor.
func document(mediaType string, v any) ([]byte, ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("encode %s: %w", mediaType, err)
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data),
		Size: int64(len(data))}
	return data, desc, nil
}

// withoutPlatform returns d without its platform, the form a blob list keeps.
func withoutPlatform(d ocispec.Descriptor) ocispec.Descriptor {
	d.Platform = nil
	return d
}

// sortedBySize returns the needed blobs largest first, ties by digest, the order dls
// schedules them in, so the floor is measured with the same schedule.
func (c *corpus) sortedBySize() []blobRef {
	out := slices.Clone(c.needed)
	slices.SortFunc(out, func(a, b blobRef) int {
		if c := cmp.Compare(b.desc.Size, a.desc.Size); c != 0 {
			return c
		}
		return cmp.Compare(a.desc.Digest, b.desc.Digest)
	})
	return out
}
