package integration

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/faultproxy"
	"github.com/dlsproject/dls/integration/registrytest"
	"github.com/dlsproject/dls/integration/testimage"
)

// faultRig is a test registry behind both fault layers: faultproxy.Handler in front of
// the registry's handler and faultproxy.Proxy in front of its port. dls reaches it only
// through the proxy, by the proxy's host name; registries.yaml mirrors that name to the
// proxy itself, so there is no other endpoint to fall back to (for docker.io the fallback
// would be the internet, and a failure test would wait on DNS).
type faultRig struct {
	Reg   *registrytest.Registry
	HTTP  *faultproxy.Handler
	Proxy *faultproxy.Proxy
	// Registries is the registries.yaml naming the proxy's mirror.
	Registries string
}

func newFaultRig(t testing.TB, opts faultproxy.Options) *faultRig {
	t.Helper()

	h := faultproxy.NewHandler()
	reg := registrytest.Start(t, registrytest.Options{Wrap: h.Wrap})
	p := faultproxy.Start(t, reg.Host, opts)

	return &faultRig{Reg: reg, HTTP: h, Proxy: p,
		Registries: writeRegistries(t, p.Host, p.URL)}
}

// fetch runs dls fetch --json of refs into cache through the rig, with extra flags.
func (rig *faultRig) fetch(t testing.TB, work, cache string, refs []string,
	flags ...string) dlsResult {
	t.Helper()

	args := []string{"fetch", "--cache", cache, "--registries", rig.Registries, "--json"}
	args = append(args, flags...)
	for _, ref := range refs {
		args = append(args, "--image", ref)
	}

	return runDLS(t, work, args...)
}

// faultBlobPath is the URL path of a blob GET in repo, as faultproxy rules select it.
func faultBlobPath(repo string, d digest.Digest) string {
	return "/v2/" + repo + "/blobs/" + d.String()
}

// faultSummary is dls fetch --json's summary with the wait the e2e tests do not read.
type faultSummary struct {
	fetchSummary
	WaitedSeconds float64 `json:"waited_seconds"`
}

func decodeFaultSummary(t testing.TB, stdout string) faultSummary {
	t.Helper()

	var s faultSummary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("decode dls fetch --json output: %v\n%s", err, stdout)
	}

	return s
}

// newChaCha returns a fast generator for the megabytes of random layer data these tests
// need, seeded with seed, which it logs.
func newChaCha(t testing.TB, seed uint64) *rand.ChaCha8 {
	t.Helper()

	t.Logf("random layer data from ChaCha8 seed %d", seed)
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}

	return rand.NewChaCha8(key)
}

// randomTarLayer is an uncompressed tar layer holding one file of size random bytes.
// Random data does not compress, so gzip would only cost time; for an uncompressed layer
// the digest is also the diff ID.
func randomTarLayer(t testing.TB, rng *rand.ChaCha8, name string, size int) testimage.Blob {
	t.Helper()

	data := make([]byte, size)
	_, _ = rng.Read(data)

	var buf bytes.Buffer
	buf.Grow(size + 2048)
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg,
		ModTime: testimage.Created}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatalf("write layer %s: %v", name, err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatalf("write layer %s: %v", name, err)
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("write layer %s: %v", name, err)
	}

	return faultBlob(ocispec.MediaTypeImageLayer, buf.Bytes())
}

func faultBlob(mediaType string, data []byte) testimage.Blob {
	return testimage.Blob{Data: data, Descriptor: ocispec.Descriptor{MediaType: mediaType,
		Digest: digest.FromBytes(data), Size: int64(len(data))}}
}

// rawImage is a linux/amd64 OCI image with uncompressed layers, pushed to a faultRig.
type rawImage struct {
	// Ref is the reference dls fetches: the proxy's host, the repository and the tag.
	Ref      string
	Repo     string
	Manifest testimage.Blob
	Config   testimage.Blob
	Layers   []testimage.Blob
}

// pushRawImage builds an image of layers (base first) and pushes it as repo:tag.
func (rig *faultRig) pushRawImage(t testing.TB, repo, tag string,
	layers ...testimage.Blob) rawImage {
	t.Helper()

	img := rawImage{Ref: rig.Proxy.Host + "/" + repo + ":" + tag, Repo: repo, Layers: layers}
	created := testimage.Created
	cfg := ocispec.Image{Created: &created, Platform: testimage.LinuxAMD64,
		RootFS: ocispec.RootFS{Type: "layers"}}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.Digest())
		m.Layers = append(m.Layers, l.Descriptor)
		rig.Reg.PushBlob(t, repo, l.Data)
	}

	img.Config = faultBlob(ocispec.MediaTypeImageConfig, faultJSON(t, cfg))
	rig.Reg.PushBlob(t, repo, img.Config.Data)
	m.Config = img.Config.Descriptor
	img.Manifest = faultBlob(ocispec.MediaTypeImageManifest, faultJSON(t, m))
	rig.Reg.PushManifest(t, repo, tag, m.MediaType, img.Manifest.Data)

	return img
}

func faultJSON(t testing.TB, v any) []byte {
	t.Helper()

	data, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}

	return data
}

// blobs returns the manifest, the config and the layers by digest.
func (img rawImage) blobs() map[digest.Digest]testimage.Blob {
	out := map[digest.Digest]testimage.Blob{img.Manifest.Digest(): img.Manifest,
		img.Config.Digest(): img.Config}
	for _, l := range img.Layers {
		out[l.Digest()] = l
	}

	return out
}

// checkCachedBlobs fails t unless cache holds every blob of want, each hashing to its name.
func checkCachedBlobs(t testing.TB, cache string, want map[digest.Digest]testimage.Blob) {
	t.Helper()

	cached := cachedBlobs(t, cache)
	for d, b := range want {
		if !cached[d] {
			t.Errorf("cache lacks %s %s (%d bytes)", b.Descriptor.MediaType, d, b.Descriptor.Size)
		}
	}
}

// faultMiB formats a byte count in MiB for logs.
func faultMiB(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
