package integration

import (
	"strconv"
	"strings"
	"testing"

	"github.com/dlsproject/dls/integration/testimage"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// matrixLimit is a documented limitation of one consumer: where it applies the consumer
// must fail with err, and the test says why instead of passing or skipping silently. A
// consumer that starts reading such archives fails the test, so the table stays true.
type matrixLimit struct {
	consumer string
	applies  func(env *matrixEnv, v matrixVariant, a matrixArchive) bool
	// err is a substring of the consumer's error output.
	err string
	why string
}

// matrixLimits are every consumer limitation the matrix meets. None of them is a fault of
// the archive: the consumer fails the same way on any archive with that trait, docker
// save's own included.
var matrixLimits = []matrixLimit{
	{
		consumer: consumerDocker,
		applies: func(env *matrixEnv, v matrixVariant, _ matrixArchive) bool {
			return !matrixVersionAtLeast(env.dockerVersion, 23, 0) && v.hasZstdLayers()
		},
		err: "invalid tar header",
		why: "Docker before 23.0 cannot decompress zstd layers: it reads them as plain tar " +
			"(zstd came to moby's pkg/archive in v23.0.0, FORMATS.md §2.1)",
	},
	{
		consumer: consumerDocker,
		applies: func(env *matrixEnv, v matrixVariant, _ matrixArchive) bool {
			return !matrixVersionAtLeast(env.dockerVersion, 23, 0) &&
				strings.HasSuffix(v.output, ".tar.zst")
		},
		err: "invalid tar header",
		why: "Docker before 23.0 does not recognise a zstd-compressed archive (moby's " +
			"DecompressStream learnt zstd in v23.0.0); k3s and podman read it",
	},
	{
		consumer: consumerDocker,
		applies: func(env *matrixEnv, v matrixVariant, _ matrixArchive) bool {
			return !env.dockerContainerdStore && v.maxLayers() > 125
		},
		err: "max depth exceeded",
		why: "moby's graphdriver layer store refuses a chain of more than 125 layers, in " +
			"every version (layer/layer_store.go maxLayerDepth); pulling such an image " +
			"fails the same way",
	},
	{
		consumer: consumerPodman,
		applies: func(env *matrixEnv, v matrixVariant, a matrixArchive) bool {
			return matrixPodmanGzipBroken(env.podmanVersion) &&
				strings.HasSuffix(v.output, ".tar.gz") && a.readsManifestJSON()
		},
		err: "docker-archive: loading tar component manifest.json: ",
		why: "podman 4.3 (containers/image 5.23, Debian 12) cannot read any gzip-compressed " +
			"docker-archive, docker save | gzip's included (podman#15944, distrobox#1015); with one " +
			"index.json entry it reads oci-archive, which works",
	},
	{
		consumer: consumerSkopeoDocker,
		applies: func(env *matrixEnv, v matrixVariant, _ matrixArchive) bool {
			return matrixPodmanGzipBroken(matrixSkopeoPodman(env.skopeo.Version)) &&
				strings.HasSuffix(v.output, ".tar.gz")
		},
		// The decompressed stream is garbage: the tar reader then fails with "invalid tar
		// header" or "unexpected EOF", depending on the bytes.
		err: "loading tar component manifest.json: ",
		why: "skopeo 1.9 shares podman 4.3's containers/image 5.23, which cannot read a " +
			"gzip-compressed docker-archive",
	},
}

// matrixLimitSkopeoOCI is containers/image's lookup of an index.json entry by ref.name.
var matrixLimitSkopeoOCI = matrixLimit{
	consumer: consumerSkopeoOCI,
	applies: func(_ *matrixEnv, _ matrixVariant, a matrixArchive) bool {
		return a.dockerTypedAmongMany()
	},
	err: "no descriptor found for reference",
	why: "containers/image looks an index.json entry up by ref.name among OCI media types " +
		"only (oci/layout getManifestDescriptor); a Docker list or manifest is reachable " +
		"only as the single entry, and docker save keeps Docker types too",
}

// findMatrixLimit returns the limit of consumer that applies to v, if any.
func findMatrixLimit(env *matrixEnv, v matrixVariant, a matrixArchive,
	consumer string) (matrixLimit, bool) {
	for _, l := range append(matrixLimits, matrixLimitSkopeoOCI) {
		if l.consumer == consumer && l.applies(env, v, a) {
			return l, true
		}
	}
	return matrixLimit{}, false
}

// checkMatrixLimit runs the consumer and checks it fails as limit documents.
func checkMatrixLimit(t *testing.T, env *matrixEnv, c matrixConsumer, v matrixVariant,
	a matrixArchive, limit matrixLimit) {
	t.Helper()

	if c.attempt == nil {
		t.Fatalf("matrixLimits names %s, which has no attempt function to run it", c.name)
	}
	err := c.attempt(t, env, v, a)
	switch {
	case err == nil:
		t.Errorf("%s read the archive, but the matrix documents it cannot: %s; if this "+
			"version can, narrow the limit in matrixLimits", c.name, limit.why)
	case !strings.Contains(err.Error(), limit.err):
		t.Errorf("%s failed, but not with %q as documented (%s):\n%v", c.name, limit.err,
			limit.why, err)
	default:
		t.Logf("%s fails as documented: %s\n%v", c.name, limit.why, err)
	}
}

// matrixPodmanGzipBroken reports whether podman version (major.minor) has containers/image 5.23's
// failure on gzip-compressed docker-archives: podman 4.3, the version of Debian 12.
func matrixPodmanGzipBroken(version string) bool {
	return matrixVersionAtLeast(version, 4, 3) && !matrixVersionAtLeast(version, 4, 4)
}

// matrixSkopeoPodman maps a skopeo version to the podman release sharing its
// containers/image: skopeo 1.9 and podman 4.3 both vendor 5.23.
func matrixSkopeoPodman(version string) string {
	if matrixVersionAtLeast(version, 1, 9) && !matrixVersionAtLeast(version, 1, 10) {
		return "4.3"
	}
	return "0.0"
}

// matrixVersionAtLeast reports whether version ("20.10.24+dfsg1", "4.3.1") is major.minor or
// later; an unparsable version is not.
func matrixVersionAtLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool {
		return r < '0' || r > '9'
	}))
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && mnr >= minor
}

// hasZstdLayers reports whether a platform image of v has a zstd layer.
func (v matrixVariant) hasZstdLayers() bool {
	for _, img := range v.images {
		for _, l := range img.Main.Layers {
			if l.Descriptor.MediaType == ocispec.MediaTypeImageLayerZstd {
				return true
			}
		}
	}
	return false
}

// maxLayers is the layer count of v's deepest platform image.
func (v matrixVariant) maxLayers() int {
	n := 0
	for _, img := range v.images {
		n = max(n, len(img.Main.Layers))
	}
	return n
}

// readsManifestJSON reports whether podman reads some part through manifest.json, which
// it does when index.json has more than one entry.
func (a matrixArchive) readsManifestJSON() bool {
	for _, p := range a.parts {
		if p.IndexEntries > 1 {
			return true
		}
	}
	return false
}

// dockerTypedAmongMany reports whether a part with several index.json entries has one whose
// top-level document has a Docker media type.
func (a matrixArchive) dockerTypedAmongMany() bool {
	for _, p := range a.parts {
		if p.IndexEntries < 2 {
			continue
		}
		for _, img := range p.Images {
			switch img.Top.Descriptor.MediaType {
			case testimage.MediaTypeDockerManifest, testimage.MediaTypeDockerManifestList:
				return true
			}
		}
	}
	return false
}
