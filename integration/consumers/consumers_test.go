package consumers

import (
	"archive/tar"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/dlsproject/dls/integration/testimage"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseImageList(t *testing.T) {
	const d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	for _, tc := range []struct {
		name    string
		out     string
		want    map[string]digest.Digest
		wantErr bool
	}{
		{name: "header only", out: "REF TYPE DIGEST SIZE PLATFORMS LABELS\n",
			want: map[string]digest.Digest{}},
		{name: "one image", out: "REF TYPE DIGEST SIZE PLATFORMS LABELS\n" +
			"docker.io/rancher/x:1 application/vnd.oci.image.index.v1+json " + d1 +
			" 2.3 MiB linux/amd64,linux/arm64 -\n",
			want: map[string]digest.Digest{"docker.io/rancher/x:1": d1}},
		{name: "bad digest", out: "REF TYPE DIGEST\nx y sha256:zz\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseImageList(tc.out)
			if (err != nil) != tc.wantErr || !maps.Equal(got, tc.want) {
				t.Fatalf("parseImageList = %v, %v; want %v, error %v", got, err, tc.want,
					tc.wantErr)
			}
		})
	}
}

func TestParseLoaded(t *testing.T) {
	out := "Loaded image: rancher/a:1\nLoaded image ID: sha256:abc\nLoaded image: b:2\n"
	if got, want := parseLoaded(out), []string{"rancher/a:1", "b:2"}; !slices.Equal(got, want) {
		t.Fatalf("parseLoaded = %q, want %q", got, want)
	}
}

// TestConsumersRunHelloImage proves the harness itself with an archive written here, without
// dls: containerd imports every platform and runs the host one, Docker loads and runs it.
func TestConsumersRunHelloImage(t *testing.T) {
	host := ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
	idx := testimage.MultiArch(t, testimage.NewRand(t, 11), testimage.MultiArchOptions{
		LayerSizes: []int{1000}, Hello: true, Attestations: true})
	const name = "docker.io/dls-test/hello:1"
	archive := writeArchive(t, idx, host, name, "dls-test/hello:1")

	ctrd := StartContainerd(t)
	ctrd.Import(t, "k8s.io", archive, true)
	want := map[string]digest.Digest{name: idx.Index.Digest()}
	if got := ctrd.Images(t, "k8s.io"); !maps.Equal(got, want) {
		t.Fatalf("containerd images = %v, want %v", got, want)
	}
	if got := ctrd.Run(t, "k8s.io", name); got != testimage.HelloOutput(host) {
		t.Fatalf("ctr run printed %q, want %q", got, testimage.HelloOutput(host))
	}

	docker := NewDocker(t)
	if got := docker.Load(t, archive); !slices.Equal(got, []string{"dls-test/hello:1"}) {
		t.Fatalf("docker load names = %q, want dls-test/hello:1", got)
	}
	if got := docker.Run(t, "dls-test/hello:1"); got != testimage.HelloOutput(host) {
		t.Fatalf("docker run printed %q, want %q", got, testimage.HelloOutput(host))
	}
}

// writeArchive writes the smallest archive both consumers accept: oci-layout, index.json
// naming the index, manifest.json for the host platform, and the blobs the host needs.
// It is a test oracle independent of dls's assemble package, not a copy of it.
func writeArchive(t testing.TB, idx testimage.Index, host ocispec.Platform,
	name, repoTag string) string {
	t.Helper()

	img, ok := idx.Image(testimage.FormatPlatform(host))
	if !ok {
		t.Fatalf("test image has no %s child", testimage.FormatPlatform(host))
	}
	top := idx.Index.Descriptor
	top.Annotations = map[string]string{"io.containerd.image.name": name}
	index := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{top}}
	index.SchemaVersion = 2
	var layers []string
	for _, l := range img.Layers {
		layers = append(layers, "blobs/sha256/"+l.Digest().Encoded())
	}
	manifest := []map[string]any{{"Config": "blobs/sha256/" + img.Config.Digest().Encoded(),
		"RepoTags": []string{repoTag}, "Layers": layers}}

	path := filepath.Join(t.TempDir(), "images.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, data []byte) {
		t.Helper()
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data))}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}

		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	add("index.json", mustJSON(t, index))
	add("manifest.json", mustJSON(t, manifest))
	for _, b := range idx.BlobsFor(testimage.FormatPlatform(host)) {
		add("blobs/sha256/"+b.Digest().Encoded(), b.Data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()

	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
