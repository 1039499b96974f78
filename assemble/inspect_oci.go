package assemble

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of documents an importer walks.
const (
	mediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	// annotationSubject marks a referrer in index.json; containerd names no image for it.
	annotationSubject = "io.containerd.manifest.subject"
	// maxIndexDepth bounds nested indexes, so a cycle of documents cannot loop.
	maxIndexDepth = 4
)

// document is the part of an index or manifest Inspect reads.
type document struct {
	MediaType string               `json:"mediaType"`
	Config    *ocispec.Descriptor  `json:"config"`
	Layers    []ocispec.Descriptor `json:"layers"`
	Manifests []ocispec.Descriptor `json:"manifests"`
	FSLayers  json.RawMessage      `json:"fsLayers"`
}

func isIndexType(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == mediaTypeDockerList
}

func isManifestType(mt string) bool {
	return mt == ocispec.MediaTypeImageManifest || mt == mediaTypeDockerManifest
}

// checkBlobNames reports files under blobs/ whose content does not hash to their name.
// Names are visited sorted so defects come in a stable order.
func (in *inspection) checkBlobNames() {
	for _, name := range slices.Sorted(maps.Keys(in.files)) {
		rest, ok := strings.CutPrefix(name, "blobs/")
		if !ok {
			continue
		}

		d := digest.Digest(strings.Replace(rest, "/", ":", 1))
		if d.Validate() != nil {
			in.defect(name, "is not named by a digest; loaders looking blobs up by digest "+
				"never find it")
			continue
		}

		if got := in.files[name].digest; got != d {
			in.defect(name, "content hashes to %s; importers store it under that digest "+
				"and images needing %s fail", got, d)
		}
	}
}

// checkLayout checks oci-layout and walks index.json, adding one image per descriptor.
func (in *inspection) checkLayout() {
	layout, index := in.files["oci-layout"], in.files["index.json"]
	switch {
	case layout == nil && index == nil:
		return
	case layout == nil:
		in.defect("index.json", "present without oci-layout; containerd's importer reads "+
			"manifest.json instead")
		return
	case index == nil:
		in.defect("oci-layout", "present without index.json; containerd's importer fails")
		return
	}

	var v struct {
		Version string `json:"imageLayoutVersion"`
	}
	if json.Unmarshal(layout.data, &v) != nil || v.Version != ocispec.ImageLayoutVersion {
		in.defect("oci-layout", "is not {\"imageLayoutVersion\":\"1.0.0\"}; containerd's "+
			"importer refuses other versions")
	}

	var idx ocispec.Index
	err := json.Unmarshal(index.data, &idx)
	if err != nil || index.data == nil {
		in.defect("index.json", "is not a JSON index of at most %d bytes: %v",
			maxMetadataBytes, err)
		return
	}

	for i, desc := range idx.Manifests {
		in.walkTop(fmt.Sprintf("index.json manifests[%d]", i), desc)
	}
}

// walkTop checks one index.json descriptor and what it reaches, and adds its image.
func (in *inspection) walkTop(where string, desc ocispec.Descriptor) {
	if _, referrer := desc.Annotations[annotationSubject]; referrer {
		in.walk(where, desc, 0)
		return
	}

	in.checkTopAnnotations(where, desc)
	if desc.Platform != nil {
		in.defect(where, "has a platform; a host-only importer of another platform "+
			"skips the image")
	}

	img := ImageReport{
		Name:    desc.Annotations[annotationImageName],
		RefName: desc.Annotations[annotationRefName],
		Target: ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest,
			Size: desc.Size},
	}
	img.Platforms = in.walk(where, desc, 0)
	complete := slices.ContainsFunc(img.Platforms, func(p PlatformReport) bool {
		return p.Complete
	})
	if !complete && in.blob(desc.Digest) != nil {
		in.defect(where, "no platform has its config and every layer in the archive; "+
			"the image cannot run")
	}

	configs := map[digest.Digest]bool{}
	for _, p := range img.Platforms {
		configs[p.Config] = true
	}

	in.configsOf[len(in.report.Images)] = configs
	in.report.Images = append(in.report.Images, img)
}

// checkTopAnnotations reports names importers cannot use.
func (in *inspection) checkTopAnnotations(where string, desc ocispec.Descriptor) {
	name := desc.Annotations[annotationImageName]
	if name == "" {
		in.defect(where, "has no %s; containerd imports the image unnamed and k3s "+
			"cannot pin it", annotationImageName)
	} else if normalised, err := normaliseName(name); err != nil || normalised != name {
		in.defect(where, "%s %q is not a fully normalised reference; ctr import drops it",
			annotationImageName, name)
	}

	if desc.Annotations[annotationRefName] == "" {
		in.defect(where, "has no %s; podman before 4.0 and OCI tools cannot name the image",
			annotationRefName)
	}
}

// walk checks the blob of desc and, for an index or manifest, what it references, and
// returns the platform manifests reached. Absent blobs below an index are defects only for
// manifests: configs and layers of platforms not selected are legitimately left out.
func (in *inspection) walk(where string, desc ocispec.Descriptor, depth int) []PlatformReport {
	doc, ok := in.readDocument(where, desc)
	if !ok {
		return nil
	}

	switch {
	case isManifestType(desc.MediaType):
		return []PlatformReport{in.walkManifest(where, desc, doc)}
	case depth >= maxIndexDepth:
		in.defect(where, "indexes nest deeper than %d", maxIndexDepth)
		return nil
	}

	var platforms []PlatformReport
	for i, child := range doc.Manifests {
		childWhere := fmt.Sprintf("%s > manifests[%d]", where, i)
		if !isIndexType(child.MediaType) && !isManifestType(child.MediaType) {
			continue // other artifacts: importers do not walk them
		}

		platforms = append(platforms, in.walk(childWhere, child, depth+1)...)
	}

	return platforms
}

// readDocument finds desc's blob, checks its size, and decodes it when it is an index or a
// manifest, checking its mediaType agrees with the descriptor's.
func (in *inspection) readDocument(where string, desc ocispec.Descriptor) (document, bool) {
	var doc document
	f := in.blob(desc.Digest)
	if f == nil {
		in.defect(where, "%s %s is not in the archive; importers fail with \"not found\" "+
			"(ctr import --all-platforms, containerd before 1.7.14)", desc.MediaType, desc.Digest)
		return doc, false
	}

	if f.size != desc.Size {
		in.defect(where, "%s is %d bytes, its descriptor says %d", desc.Digest, f.size, desc.Size)
	}

	if !isIndexType(desc.MediaType) && !isManifestType(desc.MediaType) {
		in.defect(where, "media type %q is neither index nor manifest; importers do not "+
			"walk it", desc.MediaType)
		return doc, false
	}

	err := json.Unmarshal(f.data, &doc)
	if err != nil || f.data == nil {
		in.defect(where, "%s is not a JSON document of at most %d bytes", desc.Digest, maxDocBytes)
		return doc, false
	}

	if doc.FSLayers != nil {
		in.defect(where, "%s is Docker schema 1, which no current loader accepts", desc.Digest)
		return doc, false
	}

	if doc.MediaType != "" && doc.MediaType != desc.MediaType {
		in.defect(where, "%s says media type %s, its descriptor %s; importers reject the "+
			"mismatch", desc.Digest, doc.MediaType, desc.MediaType)
	}

	return doc, true
}

// walkManifest describes the platform manifest desc, doc being its content.
func (in *inspection) walkManifest(where string, desc ocispec.Descriptor, doc document,
) PlatformReport {
	p := PlatformReport{Manifest: desc.Digest, Layers: len(doc.Layers), Complete: true}
	if doc.Config == nil {
		in.defect(where, "manifest %s has no config", desc.Digest)
		return PlatformReport{Manifest: desc.Digest}
	}

	p.Config = doc.Config.Digest
	descs := append([]ocispec.Descriptor{*doc.Config}, doc.Layers...)
	for _, d := range descs {
		p.Size += d.Size
		f := in.blob(d.Digest)
		if f == nil {
			p.Complete = false
		} else if f.size != d.Size {
			in.defect(where, "%s is %d bytes, manifest %s says %d", d.Digest, f.size,
				desc.Digest, d.Size)
		}
	}

	cfg, ok := in.readConfig(where, in.blob(p.Config), len(doc.Layers))
	p.Platform = platformString(desc.Platform)
	if p.Platform == "" && ok {
		p.Platform = platformString(&cfg.Platform)
	}

	return p
}

// readConfig decodes the config f, when present, and reports a layer count that differs
// from its diff_ids.
func (in *inspection) readConfig(where string, f *archiveFile, layers int) (ocispec.Image, bool) {
	var cfg ocispec.Image
	if f == nil {
		return cfg, false
	}

	err := json.Unmarshal(f.data, &cfg)
	if err != nil || f.data == nil {
		in.defect(where, "config %s is not a JSON document of at most %d bytes", f.digest,
			maxDocBytes)
		return cfg, false
	}

	if n := len(cfg.RootFS.DiffIDs); n != layers {
		in.defect(where, "%d layers but config %s has %d diff_ids; docker load and podman "+
			"refuse the image", layers, f.digest, n)
	}

	return cfg, true
}

// blob is the file of blob d, or nil when the archive lacks it or d is malformed.
func (in *inspection) blob(d digest.Digest) *archiveFile {
	if d.Validate() != nil {
		return nil
	}

	return in.files[blobPath(d)]
}

// platformString renders p as os/architecture[/variant]; empty for nil or an empty p.
func platformString(p *ocispec.Platform) string {
	if p == nil || p.OS == "" && p.Architecture == "" {
		return ""
	}

	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}

	return s
}
