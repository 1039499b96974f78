package resume

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/cache"
	"github.com/dlsproject/dls/integration/registrytest"
	"github.com/dlsproject/dls/integration/testimage"
	"github.com/dlsproject/dls/registry"
)

// fixture is a registry with images pushed to it and an empty cache to fetch into.
type fixture struct {
	reg   *registrytest.Registry
	store *cache.Cache
	dir   string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()

	dir := t.TempDir()
	store, err := cache.Open(dir, cache.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("open cache: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	return &fixture{reg: registrytest.Start(t, registrytest.Options{}), store: store, dir: dir}
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (fx *fixture) ref(t testing.TB, s string) reference.Named {
	t.Helper()

	ref, err := registry.ParseReference(fx.reg.Host + "/" + s)
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return ref
}

// fetch runs both stages for refs and returns the plan and stats.
func (fx *fixture) fetch(t testing.TB, opts Options, refs ...reference.Named) (*Plan, Stats) {
	t.Helper()

	client, err := registry.NewClient(registry.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	opts.Logger = quietLogger()
	f := New(client, fx.store, opts)

	ctx := context.Background()
	plan, err := f.Resolve(ctx, refs)
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if err := f.Transfer(ctx, plan); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	return plan, f.Stats(plan, 0)
}

func digests(blobs []testimage.Blob) []digest.Digest {
	var out []digest.Digest
	for _, b := range blobs {
		out = append(out, b.Digest())
	}
	slices.Sort(out)
	return out
}

func descDigests(descs []ocispec.Descriptor) []digest.Digest {
	var out []digest.Digest
	for _, d := range descs {
		out = append(out, d.Digest)
	}
	slices.Sort(out)
	return out
}

func TestFetchMultiArchKeepsIndexAndSelectedPlatform(t *testing.T) {
	fx := newFixture(t)
	rng := testimage.NewRand(t, 1)
	idx := testimage.MultiArch(t, rng, testimage.MultiArchOptions{
		LayerSizes: []int{4096, 70000}, Attestations: true,
	})
	indexDigest := idx.Push(t, fx.reg, "team/app", "v1")

	plan, stats := fx.fetch(t, Options{}, fx.ref(t, "team/app:v1"))

	if len(plan.Failed) != 0 {
		t.Fatalf("failed images: %v", plan.Failed)
	}
	img, err := fx.store.Image(fx.reg.Host + "/team/app:v1")
	if err != nil {
		t.Fatalf("image record: %v", err)
	}
	if img.Target.Digest != indexDigest {
		t.Errorf("target = %s, want index %s", img.Target.Digest, indexDigest)
	}
	amd64, _ := idx.Image("linux/amd64")
	if len(img.Manifests) != 1 || img.Manifests[0].Digest != amd64.Manifest.Digest() {
		t.Errorf("selected manifests = %v, want only %s", img.Manifests, amd64.Manifest.Digest())
	}
	if got := len(img.Children); got != 4 {
		t.Errorf("children = %d, want 4 (2 images, 2 attestations)", got)
	}

	want := digests(idx.BlobsFor("linux/amd64"))
	if got := descDigests(img.Blobs); !slices.Equal(got, want) {
		t.Errorf("image blobs = %v\nwant %v", got, want)
	}
	if missing := fx.store.Missing(img); len(missing) != 0 {
		t.Errorf("missing after fetch: %v", missing)
	}
	arm64, _ := idx.Image("linux/arm64")
	for _, b := range append(arm64.Layers, arm64.Config) {
		if _, ok := fx.store.HasBlob(b.Digest()); ok {
			t.Errorf("arm64 blob %s was fetched; only linux/amd64 was asked for", b.Digest())
		}
	}
	if stats.Blobs != len(want) || stats.BlobsDownloaded != len(want) {
		t.Errorf("stats blobs = %d downloaded %d, want %d", stats.Blobs,
			stats.BlobsDownloaded, len(want))
	}
}

func TestSharedLayerDownloadedOnceAndRefetchIsFree(t *testing.T) {
	fx := newFixture(t)
	rng := testimage.NewRand(t, 2)
	base := testimage.RandomLayer(t, rng, "base.bin", 200000)
	var distinct = map[digest.Digest]bool{}
	for _, repo := range []string{"a/one", "a/two"} {
		idx := testimage.MultiArch(t, rng, testimage.MultiArchOptions{
			Base:       map[string][]testimage.Layer{"linux/amd64": {base}},
			LayerSizes: []int{1000},
		})
		idx.Push(t, fx.reg, repo, "1")
		for _, d := range digests(idx.BlobsFor("linux/amd64")) {
			distinct[d] = true
		}
	}
	refs := []reference.Named{fx.ref(t, "a/one:1"), fx.ref(t, "a/two:1")}

	fx.reg.ResetCounts()
	_, stats := fx.fetch(t, Options{}, refs...)

	// Manifests and indexes are GET as manifests; configs and layers as blobs.
	blobGets := fx.reg.Requests("GET blob")
	// Per image its config and its own layer; the shared base layer once.
	if want := 2*2 + 1; blobGets != want {
		t.Errorf("first fetch: %d blob GETs, want %d", blobGets, want)
	}
	if stats.Blobs != len(distinct) {
		t.Errorf("stats blobs = %d, want %d distinct", stats.Blobs, len(distinct))
	}

	fx.reg.ResetCounts()
	_, stats = fx.fetch(t, Options{}, refs...)
	if n := fx.reg.Requests("GET blob"); n != 0 {
		t.Errorf("re-fetch: %d blob GETs, want 0", n)
	}
	if n := fx.reg.Requests("GET manifest"); n != len(refs) {
		t.Errorf("re-fetch: %d manifest GETs, want one per tag (%d)", n, len(refs))
	}
	if stats.BlobsDownloaded != 0 || stats.BlobsReused != len(distinct) {
		t.Errorf("re-fetch stats: downloaded %d reused %d, want 0 and %d",
			stats.BlobsDownloaded, stats.BlobsReused, len(distinct))
	}
}

func TestKeepAttestationsFetchesTheirContents(t *testing.T) {
	fx := newFixture(t)
	idx := testimage.MultiArch(t, testimage.NewRand(t, 3), testimage.MultiArchOptions{
		LayerSizes: []int{1000}, Attestations: true,
	})
	idx.Push(t, fx.reg, "team/att", "v1")

	plan, _ := fx.fetch(t, Options{KeepAttestations: true}, fx.ref(t, "team/att:v1"))

	if len(plan.Failed) != 0 {
		t.Fatalf("failed images: %v", plan.Failed)
	}
	for _, att := range idx.Attestations {
		for _, b := range []testimage.Blob{att.Config, att.Statement} {
			if _, ok := fx.store.HasBlob(b.Digest()); !ok {
				t.Errorf("attestation blob %s not fetched", b.Digest())
			}
		}
	}
}

func TestMissingPlatformListsTheOnesTheIndexHas(t *testing.T) {
	fx := newFixture(t)
	idx := testimage.MultiArch(t, testimage.NewRand(t, 4), testimage.MultiArchOptions{
		LayerSizes: []int{100}, Attestations: true,
	})
	idx.Push(t, fx.reg, "team/plat", "v1")
	s390x := ocispec.Platform{OS: "linux", Architecture: "s390x"}

	plan, _ := fx.fetch(t, Options{Platforms: []ocispec.Platform{s390x}},
		fx.ref(t, "team/plat:v1"))

	if len(plan.Failed) != 1 {
		t.Fatalf("failed = %v, want the one image", plan.Failed)
	}
	want := "has no linux/s390x manifest; it has: linux/amd64, linux/arm64"
	if got := plan.Failed[0].Error(); !strings.Contains(got, want) {
		t.Errorf("error = %q, want it to contain %q", got, want)
	}
}

func TestDigestReferenceAlreadyCachedCostsNoRequest(t *testing.T) {
	fx := newFixture(t)
	idx := testimage.MultiArch(t, testimage.NewRand(t, 5), testimage.MultiArchOptions{
		LayerSizes: []int{100},
	})
	dgst := idx.Push(t, fx.reg, "team/pinned", "v1")
	ref := fx.ref(t, "team/pinned@"+dgst.String())
	fx.fetch(t, Options{}, ref)

	fx.reg.ResetCounts()
	plan, stats := fx.fetch(t, Options{}, ref)

	if len(plan.Failed) != 0 {
		t.Fatalf("failed images: %v", plan.Failed)
	}
	for _, kind := range []string{"GET manifest", "HEAD manifest", "GET blob", "GET other"} {
		if n := fx.reg.Requests(kind); n != 0 {
			t.Errorf("%s requests = %d, want 0 for a cached digest reference", kind, n)
		}
	}
	if stats.BlobsDownloaded != 0 || stats.Blobs != len(idx.BlobsFor("linux/amd64")) {
		t.Errorf("stats = %+v, want every blob reused", stats)
	}
}

func TestUnknownImageFailsAloneAndOthersAreFetched(t *testing.T) {
	fx := newFixture(t)
	idx := testimage.MultiArch(t, testimage.NewRand(t, 6), testimage.MultiArchOptions{
		LayerSizes: []int{100},
	})
	idx.Push(t, fx.reg, "team/real", "v1")

	plan, _ := fx.fetch(t, Options{}, fx.ref(t, "team/ghost:v1"), fx.ref(t, "team/real:v1"))

	if len(plan.Failed) != 1 || !strings.Contains(plan.Failed[0].Ref, "team/ghost:v1") {
		t.Fatalf("failed = %v, want only team/ghost:v1", plan.Failed)
	}
	if !errors.Is(plan.Failed[0], registry.ErrNotFound) {
		t.Errorf("error %v does not wrap registry.ErrNotFound", plan.Failed[0])
	}
	if len(plan.Images) != 1 {
		t.Fatalf("fetched images = %d, want 1", len(plan.Images))
	}
	if missing := fx.store.Missing(plan.Images[0].Image); len(missing) != 0 {
		t.Errorf("team/real:v1 misses %d blobs", len(missing))
	}
}

func TestFetchingAnotherPlatformAddsToTheImage(t *testing.T) {
	fx := newFixture(t)
	idx := testimage.MultiArch(t, testimage.NewRand(t, 7), testimage.MultiArchOptions{
		LayerSizes: []int{100},
	})
	idx.Push(t, fx.reg, "team/both", "v1")
	ref := fx.ref(t, "team/both:v1")
	arm64 := ocispec.Platform{OS: "linux", Architecture: "arm64"}

	fx.fetch(t, Options{Platforms: []ocispec.Platform{arm64}}, ref)
	plan, _ := fx.fetch(t, Options{}, ref)

	img := plan.Images[0].Image
	var got []digest.Digest
	for _, m := range img.Manifests {
		got = append(got, m.Digest)
	}
	amd64Image, _ := idx.Image("linux/amd64")
	arm64Image, _ := idx.Image("linux/arm64")
	want := []digest.Digest{amd64Image.Manifest.Digest(), arm64Image.Manifest.Digest()}
	if !slices.Equal(got, want) {
		t.Errorf("selected manifests = %v, want amd64 (asked now) then arm64 (before): %v",
			got, want)
	}
	wantBlobs := digests(idx.BlobsFor("linux/amd64", "linux/arm64"))
	if gotBlobs := descDigests(img.Blobs); !slices.Equal(gotBlobs, wantBlobs) {
		t.Errorf("image blobs = %v\nwant both platforms' %v", gotBlobs, wantBlobs)
	}
}

func TestSinglePlatformImageOfAnotherPlatformFails(t *testing.T) {
	fx := newFixture(t)
	img := testimage.NewImage(t, testimage.ImageOptions{
		Layers: []testimage.Layer{testimage.RandomLayer(t, testimage.NewRand(t, 8), "a", 100)},
	})
	img.Push(t, fx.reg, "team/amd64only", "v1")
	arm64 := ocispec.Platform{OS: "linux", Architecture: "arm64"}

	plan, _ := fx.fetch(t, Options{Platforms: []ocispec.Platform{arm64}},
		fx.ref(t, "team/amd64only:v1"))

	if len(plan.Failed) != 1 {
		t.Fatalf("failed = %v, want the image", plan.Failed)
	}
	want := "is a single-platform image for linux/amd64; it has no linux/arm64 manifest"
	if got := plan.Failed[0].Error(); !strings.Contains(got, want) {
		t.Errorf("error = %q, want it to contain %q", got, want)
	}
	for _, l := range img.Layers {
		if _, ok := fx.store.HasBlob(l.Digest()); ok {
			t.Errorf("layer %s was downloaded for an image that failed", l.Digest())
		}
	}
}

func TestPinnedDigestOfAnotherTagIsFetchedAndReported(t *testing.T) {
	fx := newFixture(t)
	rng := testimage.NewRand(t, 9)
	opts := testimage.MultiArchOptions{LayerSizes: []int{100}}
	current := testimage.MultiArch(t, rng, opts).Push(t, fx.reg, "team/moved", "v1")
	other := testimage.MultiArch(t, rng, opts).Push(t, fx.reg, "team/moved", "v2")

	plan, _ := fx.fetch(t, Options{}, fx.ref(t, "team/moved:v1@"+other.String()))

	if len(plan.Images) != 1 {
		t.Fatalf("images = %d, failed %v; want the pinned image fetched", len(plan.Images),
			plan.Failed)
	}
	pi := plan.Images[0]
	if pi.Image.Target.Digest != other {
		t.Errorf("target = %s, want the pinned digest %s", pi.Image.Target.Digest, other)
	}
	if pi.MovedTag != current {
		t.Errorf("MovedTag = %q, want the tag's digest %s", pi.MovedTag, current)
	}
}
