package integration

import (
	"runtime"
	"strings"
	"testing"

	"github.com/dlsproject/dls/integration/registrytest"
	"github.com/dlsproject/dls/integration/testimage"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// matrixSeed seeds every random layer of the matrix; testimage.NewRand logs it.
const matrixSeed = 20260505

// Layer sizes of the matrix: small, so the whole matrix moves a few megabytes.
const (
	matrixLayerSize = 16 << 10
	// matrixSplitLayer and matrixSplitMax make two images that fit one archive each but
	// not one together.
	matrixSplitLayer = 192 << 10
	matrixSplitMax   = 320 << 10
	// matrixDeepLayers is the layer count of the deep image, past the 125 layers Docker's
	// layer store accepts.
	matrixDeepLayers = 130
)

// matrixVariant is one kind of archive: images pushed to the registry, fetched with dls
// fetch and written with dls assemble, then given to every consumer.
type matrixVariant struct {
	name   string
	images []matrixImage
	// platforms are dls fetch's --platform values in order; nil means the host's only.
	platforms []string
	// assemble are dls assemble's --platform values; nil writes what was fetched.
	assemble []string
	// output is the archive's file name; its suffix picks the compression.
	output string
	// maxSize splits the archive (dls assemble --max-size) when positive.
	maxSize int64
	// run names the image whose hello program the consumers run; "" runs nothing.
	run string
}

// TestMatrix writes one archive per variant with the real dls binary and has every
// consumer read it: ctr import with and without --all-platforms, podman load, skopeo
// inspect through docker-archive: and oci-archive:, and docker load. A consumer that
// cannot read a variant must fail the way matrixLimits documents, never silently.
func TestMatrix(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	registries := writeRegistries(t, "docker.io", reg.URL)
	variants := matrixVariants(t, reg)

	env := newMatrixEnv(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			archive := buildMatrixArchive(t, v, registries)
			checkMatrixArchive(t, v, archive)
			// The consumers share nothing but the daemons, which serve them concurrently.
			for _, c := range matrixConsumers {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					if limit, ok := findMatrixLimit(env, v, archive, c.name); ok {
						checkMatrixLimit(t, env, c, v, archive, limit)
						return
					}
					c.check(t, env, v, archive)
				})
			}
		})
	}
}

// matrixVariants builds and pushes the images of every variant.
func matrixVariants(t testing.TB, reg *registrytest.Registry) []matrixVariant {
	t.Helper()

	host := hostPlatform(t)
	b := &matrixBuilder{reg: reg, rng: testimage.NewRand(t, matrixSeed), host: host,
		other: testimage.LinuxARM64}
	if runtime.GOARCH == "arm64" {
		b.other = testimage.LinuxAMD64
	}
	small := b.random(t, 1, matrixLayerSize)

	one := b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: small, Hello: true}), "one", "1",
		true)
	two := b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: small}), "two", "1", false)
	narrowed := b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: small, Hello: true}),
		"narrowed", "1", true)
	both := []string{testimage.FormatPlatform(host), testimage.FormatPlatform(b.other)}
	pin := matrixPinned(b.pushIndex(t, b.index(t, matrixIndexOptions{Layers: small}),
		"pinned", "", false))

	return []matrixVariant{
		{name: "one platform of an OCI index", images: []matrixImage{one}, run: one.Name},
		{name: "two platforms", images: []matrixImage{two}, platforms: both},
		{name: "two platforms fetched, host platform assembled",
			images: []matrixImage{narrowed}, platforms: both,
			assemble: []string{testimage.FormatPlatform(host)}, run: narrowed.Name},
		{name: "digest-only reference", images: []matrixImage{pin}},
		b.mixedRefs(t),
		b.twoTags(t),
		b.oneRepository(t),
		b.sharedLayers(t),
		b.repeatedLayer(t),
		b.zstdLayers(t),
		b.deepImage(t),
		b.dockerList(t),
		b.singleManifest(t, "single docker schema2 manifest", testimage.Docker,
			"single-docker"),
		b.singleManifest(t, "single OCI manifest", testimage.OCI, "single-oci"),
		b.dockerBesideOCI(t),
		b.compressed(t, "gzip-compressed archive", "gz", "images.tar.gz"),
		b.compressed(t, "zstd-compressed archive", "zst", "images.tar.zst"),
		b.split(t),
	}
}

// selected returns the platforms v's archive holds, in preference order.
func (v matrixVariant) selected(host ocispec.Platform) []string {
	if len(v.assemble) > 0 {
		return v.assemble
	}
	if len(v.platforms) > 0 {
		return v.platforms
	}
	return []string{testimage.FormatPlatform(host)}
}

// matrixSlug turns a variant name into a containerd namespace.
func matrixSlug(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
