package testimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/dlsproject/dls/integration/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestNewLayer(t *testing.T) {
	l := NewLayer(t,
		File{Name: "etc/app/conf", Data: []byte("a=1\n")},
		File{Name: "etc/motd", Mode: 0o600, Data: []byte("hi\n")},
	)

	zr, err := gzip.NewReader(bytes.NewReader(l.Data))
	if err != nil {
		t.Fatal(err)
	}

	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}

	if got := digest.FromBytes(raw); got != l.DiffID {
		t.Fatalf("DiffID = %s, want sha256 of the tar %s", l.DiffID, got)
	}

	var got []string
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}

		if !hdr.ModTime.Equal(Created) || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d, want %v 0 0",
				hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, Created)
		}
		got = append(got, hdr.Name+" "+os.FileMode(hdr.Mode).String())
	}
	want := []string{"etc/ -rwxr-xr-x", "etc/app/ -rwxr-xr-x", "etc/app/conf -rw-r--r--",
		"etc/motd -rw-------"}
	if !slices.Equal(got, want) {
		t.Fatalf("entries = %q, want %q", got, want)
	}
}

func TestMultiArchIsDeterministic(t *testing.T) {
	opts := MultiArchOptions{LayerSizes: []int{100, 2000}, Attestations: true}
	a := MultiArch(t, NewRand(t, 7), opts)
	b := MultiArch(t, NewRand(t, 7), opts)
	c := MultiArch(t, NewRand(t, 8), opts)

	if a.Index.Digest() != b.Index.Digest() {
		t.Fatalf("same seed: index digests %s and %s differ", a.Index.Digest(), b.Index.Digest())
	}
	if a.Index.Digest() == c.Index.Digest() {
		t.Fatalf("seeds 7 and 8 gave the same index %s", a.Index.Digest())
	}
}

func TestImageConfig(t *testing.T) {
	rng := NewRand(t, 1)
	layers := []Layer{RandomLayer(t, rng, "a", 10), RandomLayer(t, rng, "b", 10)}
	img := NewImage(t, ImageOptions{Format: Docker, Platform: LinuxARM64, Layers: layers,
		Entrypoint: []string{"/bin/x"}})

	var cfg ocispec.Image
	if err := json.Unmarshal(img.Config.Data, &cfg); err != nil {
		t.Fatal(err)
	}

	wantDiffIDs := []digest.Digest{layers[0].DiffID, layers[1].DiffID}
	if !slices.Equal(cfg.RootFS.DiffIDs, wantDiffIDs) || cfg.OS != "linux" ||
		cfg.Architecture != "arm64" || !slices.Equal(cfg.Config.Entrypoint, []string{"/bin/x"}) {
		t.Fatalf("config = %s", img.Config.Data)
	}

	var m ocispec.Manifest
	if err := json.Unmarshal(img.Manifest.Data, &m); err != nil {
		t.Fatal(err)
	}

	if m.MediaType != MediaTypeDockerManifest || m.Config.MediaType != MediaTypeDockerConfig ||
		m.Config.Digest != img.Config.Digest() || len(m.Layers) != 2 ||
		m.Layers[1].Digest != layers[1].Digest() ||
		m.Layers[1].MediaType != MediaTypeDockerLayerGzip {
		t.Fatalf("manifest = %s", img.Manifest.Data)
	}
}

func TestBlobsFor(t *testing.T) {
	rng := NewRand(t, 2)
	base := RandomLayer(t, rng, "base", 50)
	idx := MultiArch(t, rng, MultiArchOptions{
		Base:         map[string][]Layer{"linux/amd64": {base}, "linux/arm64": {base}},
		LayerSizes:   []int{10},
		Attestations: true,
	})
	amd, _ := idx.Image("linux/amd64")
	arm, _ := idx.Image("linux/arm64")

	got := map[digest.Digest]bool{}
	for _, b := range idx.BlobsFor("linux/amd64") {
		got[b.Digest()] = true
	}
	// index + 2 image manifests + 2 attestation manifests + config + base + own layer
	if len(got) != 8 {
		t.Fatalf("BlobsFor(linux/amd64) has %d blobs, want 8", len(got))
	}
	for _, b := range []Blob{idx.Index, arm.Manifest, idx.Attestations[1].Manifest,
		amd.Config, amd.Layers[0], amd.Layers[1]} {
		if !got[b.Digest()] {
			t.Errorf("BlobsFor(linux/amd64) lacks %s %s", b.Descriptor.MediaType, b.Digest())
		}
	}
	for _, b := range []Blob{arm.Config, arm.Layers[1], idx.Attestations[0].Statement} {
		if got[b.Digest()] {
			t.Errorf("BlobsFor(linux/amd64) has %s %s", b.Descriptor.MediaType, b.Digest())
		}
	}
}

func TestPushIndex(t *testing.T) {
	r := registrytest.Start(t, registrytest.Options{})
	for _, tc := range []struct {
		name   string
		format Format
	}{
		{"oci index with attestations", OCI},
		{"docker manifest list with attestations", Docker},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idx := MultiArch(t, NewRand(t, 3), MultiArchOptions{Format: tc.format,
				LayerSizes: []int{300}, Attestations: true})
			repo := "test/" + map[Format]string{OCI: "oci", Docker: "docker"}[tc.format]
			got := idx.Push(t, r, repo, "v1")
			if got != idx.Index.Digest() {
				t.Fatalf("Push = %s, want %s", got, idx.Index.Digest())
			}

			checkGet(t, r.URL+"/v2/"+repo+"/manifests/v1", idx.Index)
			for _, b := range idx.Children() {
				checkGet(t, r.URL+"/v2/"+repo+"/manifests/"+b.Digest().String(), b)
			}
			for _, img := range idx.Images {
				for _, b := range img.Blobs()[1:] {
					checkGet(t, r.URL+"/v2/"+repo+"/blobs/"+b.Digest().String(), b)
				}
			}
			ann := idx.Attestations[1].Manifest.Descriptor.Annotations
			if ann[AnnotationReferenceDigest] != idx.Images[1].Manifest.Digest().String() {
				t.Fatalf("attestation names %s, want the arm64 manifest %s",
					ann[AnnotationReferenceDigest], idx.Images[1].Manifest.Digest())
			}
		})
	}
}

// checkGet fetches u and compares the body (and, for manifests, Content-Type) with want.
func checkGet(t testing.TB, u string, want Blob) {
	t.Helper()

	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}

	req.Header.Set("Accept", want.Descriptor.MediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}

	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want.Data) {
		t.Fatalf("GET %s: %s, %d bytes, want 200 and %s (%d bytes)",
			u, resp.Status, len(body), want.Digest(), len(want.Data))
	}
}

func TestHelloBinaryRunsOnHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Fatalf("dls tests need linux, running on %s", runtime.GOOS)
	}
	bin := filepath.Join(t.TempDir(), "hello")
	if err := os.WriteFile(bin, HelloBinary(t, runtime.GOARCH), 0o755); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(bin, "ignored-arg").Output()
	if err != nil {
		t.Fatalf("run hello: %v", err)
	}

	want := HelloOutput(ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH})
	if string(out) != want {
		t.Fatalf("hello printed %q, want %q", out, want)
	}
}
