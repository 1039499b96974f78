package assemble

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Annotation keys of index.json descriptors.
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = ocispec.AnnotationRefName
)

// ociLayoutFile is the oci-layout file, byte for byte what containerd's importer and the
// image-layout spec expect.
const ociLayoutFile = `{"imageLayoutVersion":"1.0.0"}`

// manifestItem is one entry of manifest.json. Field order is Docker's; LayerSources and
// Parent are left out because no loader needs them for registry layers.
type manifestItem struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// blobPath is where blob d lives in the archive.
func blobPath(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// indexJSON is the archive's index.json: one descriptor per image, in image name order.
// json.Marshal writes struct fields in declaration order and map keys sorted, so the bytes
// depend only on the images.
func indexJSON(images []imagePlan) ([]byte, error) {
	index := ocispec.Index{
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: make([]ocispec.Descriptor, 0, len(images)),
	}
	index.SchemaVersion = 2
	for _, p := range images {
		index.Manifests = append(index.Manifests, ocispec.Descriptor{
			MediaType: p.image.Target.MediaType,
			Digest:    p.image.Target.Digest,
			Size:      p.image.Target.Size,
			Annotations: map[string]string{
				annotationImageName: p.name.full,
				annotationRefName:   p.name.refName,
			},
		})
	}

	data, err := json.Marshal(index)
	if err != nil {
		return nil, fmt.Errorf("encode index.json: %w", err)
	}

	return data, nil
}

// manifestJSON is the archive's manifest.json: one item per image, in image name order,
// except that images with the same config and layers share the first one's item, which
// lists every tag sorted. Digest-only images add no tag; an item with none has RepoTags
// [] (docker load then loads it untagged).
func manifestJSON(images []imagePlan) ([]byte, error) {
	items := []manifestItem{}
	itemOf := map[string]int{}
	for _, p := range images {
		key := itemKey(p)
		i, ok := itemOf[key]
		if !ok {
			i = len(items)
			itemOf[key] = i
			items = append(items, newManifestItem(p))
		}

		if p.name.repoTag != "" && !slices.Contains(items[i].RepoTags, p.name.repoTag) {
			items[i].RepoTags = append(items[i].RepoTags, p.name.repoTag)
			slices.Sort(items[i].RepoTags)
		}
	}

	data, err := json.Marshal(items)
	if err != nil {
		return nil, fmt.Errorf("encode manifest.json: %w", err)
	}

	return data, nil
}

// itemKey identifies the manifest.json item of p: its config and layers in order.
func itemKey(p imagePlan) string {
	var b strings.Builder
	b.WriteString(p.config.Digest.String())
	for _, l := range p.layers {
		b.WriteString(" ")
		b.WriteString(l.Digest.String())
	}

	return b.String()
}

// newManifestItem is p's item with no tag yet. Layers follow the manifest, which is the
// diff_ids order; a layer used twice is listed twice.
func newManifestItem(p imagePlan) manifestItem {
	item := manifestItem{
		Config:   blobPath(p.config.Digest),
		RepoTags: []string{},
		Layers:   make([]string, 0, len(p.layers)),
	}
	for _, l := range p.layers {
		item.Layers = append(item.Layers, blobPath(l.Digest))
	}

	return item
}

// repositoriesJSON is the legacy repositories file, {"repo": {"tag": "<top diff_id hex>"}},
// or nil when no image is tagged (docker save leaves the file out then). Nothing reads it
// any more; it is written because docker save does. Map keys are sorted by json.Marshal.
func repositoriesJSON(images []imagePlan) ([]byte, error) {
	repos := map[string]map[string]string{}
	for _, p := range images {
		if p.name.repoTag == "" || len(p.diffIDs) == 0 {
			continue
		}

		if repos[p.name.repo] == nil {
			repos[p.name.repo] = map[string]string{}
		}
		repos[p.name.repo][p.name.tag] = p.diffIDs[len(p.diffIDs)-1].Encoded()
	}

	if len(repos) == 0 {
		return nil, nil
	}

	data, err := json.Marshal(repos)
	if err != nil {
		return nil, fmt.Errorf("encode repositories: %w", err)
	}

	return data, nil
}
