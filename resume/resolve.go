package resume

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/dlsproject/dls/cache"
	"github.com/dlsproject/dls/registry"
)

// maxManifestSize caps a manifest or index read back from the cache; the registry package
// applies the same kind of cap on the wire.
const maxManifestSize = 4 << 20

// Plan is the outcome of resolution: each image pinned to digests, recorded in the cache,
// with the blobs it needs. Images that could not be resolved are in Failed instead.
type Plan struct {
	Images []PlannedImage
	Failed []*ImageError
}

// PlannedImage is one resolved image and the reference its blobs are fetched through.
type PlannedImage struct {
	Ref   reference.Named
	Image cache.Image
	// MovedTag is set for a name:tag@digest reference whose tag now points at other
	// content: the digest it holds is the tag's, and the pinned digest was fetched.
	MovedTag digest.Digest
}

// ImageError is the failure of one listed image; the others go on without it.
type ImageError struct {
	Ref string
	Err error
}

func (e *ImageError) Error() string { return e.Ref + ": " + e.Err.Error() }
func (e *ImageError) Unwrap() error { return e.Err }

// Resolve pins every reference to its manifests, stores the manifests and configs in the
// cache, records the resolved images there in one write, and returns the plan. Failures of
// single images are collected in the plan, not returned; the error is only for a cancelled
// context or a failed record. The plan keeps the order of refs.
func (f *Fetcher) Resolve(ctx context.Context, refs []reference.Named) (*Plan, error) {
	results := make([]PlannedImage, len(refs))
	errs := make([]error, len(refs))

	// Images fail one by one, so no error cancels the others.
	var g errgroup.Group
	g.SetLimit(resolveConcurrency)
	for i, ref := range refs {
		g.Go(func() error {
			results[i], errs[i] = f.resolveImage(ctx, ref)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("resolve images: %w", err)
	}

	plan := &Plan{}
	var records []cache.Image
	for i, ref := range refs {
		if errs[i] != nil {
			plan.Failed = append(plan.Failed, &ImageError{Ref: ref.String(), Err: errs[i]})
			f.log.Error("resolve failed", "image", ref.String(), "err", errs[i])
			continue
		}
		plan.Images = append(plan.Images, results[i])
		records = append(records, results[i].Image)
	}

	// One write for all records: the cache's index.json lists every image, so recording
	// them one by one would cost time quadratic in the size of the fleet.
	if err := f.store.PutImages(records); err != nil {
		return nil, fmt.Errorf("record %d images: %w", len(records), err)
	}
	return plan, nil
}

// resolveImage pins one reference: top-level document, every child of an index, the
// selected platform manifests and their configs. Layers are left to Transfer, and the
// record to Resolve.
func (f *Fetcher) resolveImage(ctx context.Context, ref reference.Named) (PlannedImage,
	error) {
	top, err := f.topManifest(ctx, ref)
	if err != nil {
		return PlannedImage{}, err
	}

	img, err := f.pinImage(ctx, ref, top)
	if err != nil {
		return PlannedImage{}, err
	}

	planned := PlannedImage{Ref: ref, Image: img}
	if top.TagMoved() {
		planned.MovedTag = top.TagDigest
	}
	return planned, nil
}

// pinImage builds the record of one image from its top-level document.
func (f *Fetcher) pinImage(ctx context.Context, ref reference.Named,
	top registry.Manifest) (cache.Image, error) {
	doc, err := parseDocument(top.Descriptor.MediaType, top.Bytes)
	if err != nil {
		return cache.Image{}, fmt.Errorf("read manifest %s: %w", top.Descriptor.Digest, err)
	}

	img := cache.Image{Name: ref.String(), Target: plainDescriptor(top.Descriptor)}
	if doc.isIndex() {
		img.Children = doc.Manifests
		img.Manifests, err = f.selectChildren(ctx, ref, doc.Manifests)
		if err != nil {
			return cache.Image{}, err
		}
		img.Manifests = f.keepFetchedPlatforms(img)
	} else {
		img.Manifests = []ocispec.Descriptor{img.Target}
	}

	blobs, err := f.platformBlobs(ctx, ref, img.Manifests)
	if err != nil {
		return cache.Image{}, err
	}
	if f.attestations {
		more, err := f.attestationBlobs(ref, img.Children)
		if err != nil {
			return cache.Image{}, err
		}
		blobs = append(blobs, more...)
	}
	img.Blobs = uniqueSorted(append(append(append([]ocispec.Descriptor{img.Target},
		img.Children...), img.Manifests...), blobs...))
	return img, nil
}

// topManifest returns the document a reference names. A reference pinned by digest whose
// document is already cached costs no request at all; a tag is always asked of the
// registry, since tags move.
func (f *Fetcher) topManifest(ctx context.Context, ref reference.Named) (registry.Manifest,
	error) {
	if canonical, ok := ref.(reference.Canonical); ok {
		if m, ok := f.cachedManifest(ref.String(), canonical.Digest()); ok {
			return m, nil
		}
	}

	m, err := f.client.Resolve(ctx, ref)
	if err != nil {
		return m, err
	}

	if err := f.putManifest(ref, m.Descriptor, m.Bytes); err != nil {
		return m, err
	}
	return m, nil
}

// cachedManifest finds a previously recorded top-level document by name and digest.
func (f *Fetcher) cachedManifest(name string, dgst digest.Digest) (registry.Manifest, bool) {
	img, err := f.store.Image(name)
	if err != nil || img.Target.Digest != dgst {
		return registry.Manifest{}, false
	}

	raw, err := f.store.ReadBlob(dgst, maxManifestSize)
	if err != nil {
		return registry.Manifest{}, false
	}
	return registry.Manifest{Descriptor: img.Target, Bytes: raw}, true
}

// selectChildren stores every manifest an index lists (attestations included: containerd
// walks them all when importing with all platforms) and returns the ones matching the
// requested platforms, in the order the platforms were requested.
func (f *Fetcher) selectChildren(ctx context.Context, ref reference.Named,
	children []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	for _, child := range children {
		if err := f.ensureManifest(ctx, ref, child); err != nil {
			return nil, err
		}
	}

	var selected []ocispec.Descriptor
	for _, p := range f.platforms {
		child, ok := matchPlatform(p, children)
		if !ok {
			return nil, fmt.Errorf("image %s has no %s manifest; it has: %s", ref,
				formatPlatform(p), strings.Join(listPlatforms(children), ", "))
		}
		if !slices.ContainsFunc(selected, func(d ocispec.Descriptor) bool {
			return d.Digest == child.Digest
		}) {
			selected = append(selected, child)
		}
	}
	return selected, nil
}

// keepFetchedPlatforms adds to img's selected manifests those an earlier fetch of the same
// name selected, when the name still points at the same index: fetching linux/arm64 after
// linux/amd64 adds a platform to the cache, it does not swap one for the other. A tag that
// moved starts afresh.
func (f *Fetcher) keepFetchedPlatforms(img cache.Image) []ocispec.Descriptor {
	prev, err := f.store.Image(img.Name)
	if err != nil || prev.Target.Digest != img.Target.Digest {
		return img.Manifests
	}

	merged := img.Manifests
	for _, m := range prev.Manifests {
		if !slices.ContainsFunc(merged, func(d ocispec.Descriptor) bool {
			return d.Digest == m.Digest
		}) {
			merged = append(merged, m)
		}
	}
	return merged
}

// ensureManifest stores a child manifest unless the cache already holds it.
func (f *Fetcher) ensureManifest(ctx context.Context, ref reference.Named,
	desc ocispec.Descriptor) error {
	if f.store.Has(desc) {
		return nil
	}

	m, err := f.client.FetchManifest(ctx, ref, desc)
	if err != nil {
		return err
	}

	return f.putManifest(ref, desc, m.Bytes)
}

// putManifest stores a manifest's bytes unless the cache holds them already.
func (f *Fetcher) putManifest(ref reference.Named, desc ocispec.Descriptor, raw []byte) error {
	if f.store.Has(desc) {
		return nil
	}

	if err := f.store.PutBlob(plainDescriptor(desc), raw); err != nil {
		return fmt.Errorf("store manifest %s of %s: %w", desc.Digest, ref, err)
	}
	f.stats.stored(desc.Digest)
	return nil
}

// platformBlobs returns the configs and layers of the selected manifests. Configs are
// fetched here, not in Transfer, so that an image whose config contradicts its manifest
// fails before any layer is downloaded.
func (f *Fetcher) platformBlobs(ctx context.Context, ref reference.Named,
	manifests []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	var blobs []ocispec.Descriptor
	for i, desc := range manifests {
		raw, err := f.store.ReadBlob(desc.Digest, maxManifestSize)
		if err != nil {
			return nil, fmt.Errorf("read manifest %s of %s: %w", desc.Digest, ref, err)
		}

		doc, err := parseDocument(desc.MediaType, raw)
		if err != nil || doc.isIndex() {
			return nil, fmt.Errorf("read manifest %s of %s: not an image manifest (%v)",
				desc.Digest, ref, err)
		}

		cfg, err := f.fetchConfig(ctx, ref, *doc.Config)
		if err != nil {
			return nil, err
		}
		// TODO: layers are verified against their digests only, not their decompressed
		// bytes against the config's diff_ids; a bad pairing surfaces at docker load or pod
		// start. Checking it needs the check to gate the commit (so a re-run cannot reuse
		// a layer that failed), i.e. decompressing while streaming into the partial file.
		if len(cfg.RootFS.DiffIDs) != len(doc.Layers) {
			return nil, fmt.Errorf("image %s manifest %s lists %d layers but its config has "+
				"%d diff_ids", ref, desc.Digest, len(doc.Layers), len(cfg.RootFS.DiffIDs))
		}
		if desc.Platform == nil {
			p := ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture,
				Variant: cfg.Variant}
			if err := f.checkSinglePlatform(ref, p); err != nil {
				return nil, err
			}
			manifests[i].Platform = &p
		}

		blobs = append(blobs, *doc.Config)
		blobs = append(blobs, doc.Layers...)
	}
	return blobs, nil
}

// attestationBlobs returns the configs and layers of the attestation manifests among an
// index's children. They are not images, so nothing is checked beyond their descriptors;
// Transfer fetches and verifies them like any blob.
func (f *Fetcher) attestationBlobs(ref reference.Named,
	children []ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	var blobs []ocispec.Descriptor
	for _, child := range children {
		if !isAttestation(child) {
			continue
		}

		raw, err := f.store.ReadBlob(child.Digest, maxManifestSize)
		if err != nil {
			return nil, fmt.Errorf("read attestation %s of %s: %w", child.Digest, ref, err)
		}

		doc, err := parseDocument(child.MediaType, raw)
		if err != nil || doc.isIndex() {
			return nil, fmt.Errorf("read attestation %s of %s: not a manifest (%v)",
				child.Digest, ref, err)
		}
		blobs = append(append(blobs, *doc.Config), doc.Layers...)
	}
	return blobs, nil
}

// checkSinglePlatform fails when an image with one manifest (no index) was built for none of
// the requested platforms: fetching it anyway would put an image in the archive that cannot
// run where it is going. A config that names no platform passes.
func (f *Fetcher) checkSinglePlatform(ref reference.Named, p ocispec.Platform) error {
	if p.OS == "" || p.Architecture == "" {
		return nil
	}

	for _, want := range f.platforms {
		if cache.PlatformMatches(want, p) {
			return nil
		}
	}
	return fmt.Errorf("image %s is a single-platform image for %s; it has no %s manifest",
		ref, formatPlatform(p), formatPlatform(f.platforms[0]))
}

// fetchConfig transfers a config blob into the cache (resuming like any blob) and decodes it.
func (f *Fetcher) fetchConfig(ctx context.Context, ref reference.Named,
	desc ocispec.Descriptor) (imageConfig, error) {
	var cfg imageConfig
	if desc.Size > maxConfigSize {
		return cfg, fmt.Errorf("config %s of %s is %d bytes, over the %d-byte limit",
			desc.Digest, ref, desc.Size, maxConfigSize)
	}

	if err := f.fetchBlob(ctx, ref, desc); err != nil {
		return cfg, err
	}

	raw, err := f.store.ReadBlob(desc.Digest, maxConfigSize)
	if err != nil {
		return cfg, fmt.Errorf("read config %s of %s: %w", desc.Digest, ref, err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return cfg, fmt.Errorf("decode config %s of %s: %w", desc.Digest, ref, err)
	}
	return cfg, nil
}

// plainDescriptor keeps what identifies content (media type, digest, size) and drops
// index-specific fields, so one blob has one descriptor wherever it was met.
func plainDescriptor(d ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
}

// uniqueSorted returns plain descriptors sorted by digest with duplicates removed; the
// order is fixed so image records do not depend on fetch order.
func uniqueSorted(descs []ocispec.Descriptor) []ocispec.Descriptor {
	out := make([]ocispec.Descriptor, 0, len(descs))
	for _, d := range descs {
		out = append(out, plainDescriptor(d))
	}
	slices.SortFunc(out, func(a, b ocispec.Descriptor) int {
		return strings.Compare(a.Digest.String(), b.Digest.String())
	})
	return slices.CompactFunc(out, func(a, b ocispec.Descriptor) bool {
		return a.Digest == b.Digest
	})
}
