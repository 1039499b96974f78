package integration

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dlsproject/dls/integration/consumers"
	"github.com/dlsproject/dls/integration/testimage"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// matrixPodmanNames are the names podman load reports for a variant, and the images it then
// holds by name (Digest empty where podman generated the manifest it stored).
type matrixPodmanNames struct {
	loaded []string
	images map[string]consumers.PodmanImage
}

// matrixPodmanExpect says how podman 4 names the images of part p.
//
// With one index.json entry podman reads the archive as oci-archive and names the image
// from io.containerd.image.name (the full reference), storing the top-level digest.
// Otherwise it reads manifest.json as docker-archive and names each image from its RepoTags
// entry. dls writes those fully qualified ("docker.io/dls-matrix/x:1"), so podman names
// every image as containerd does; with docker save's familiar form ("dls-matrix/x:1") it
// would prefix "localhost/". An untagged item is loaded by ID.
func matrixPodmanExpect(p matrixPart) matrixPodmanNames {
	want := matrixPodmanNames{images: map[string]consumers.PodmanImage{}}
	if p.IndexEntries == 1 {
		img := p.Images[0]
		want.loaded = []string{img.Name}
		want.images[img.Name] = consumers.PodmanImage{ID: img.Main.Config.Digest(),
			Digest: img.Top.Digest()}
		return want
	}

	for _, img := range p.Images {
		name := img.Name
		if img.Familiar == "" {
			name = img.Main.Config.Digest().String()
		}
		want.loaded = append(want.loaded, name)
		want.images[name] = consumers.PodmanImage{ID: img.Main.Config.Digest()}
	}
	return want
}

// attemptMatrixPodman loads every part into a new private podman storage.
func attemptMatrixPodman(t *testing.T, _ *matrixEnv, _ matrixVariant, a matrixArchive) error {
	pm := consumers.NewPodman(t)
	for _, p := range a.parts {
		if _, err := pm.Load(t.Context(), p.File); err != nil {
			return err
		}
	}
	return nil
}

// checkMatrixPodman loads every part, as written (podman decompresses it), into a private
// storage and checks the names reported and the images stored.
func checkMatrixPodman(t *testing.T, _ *matrixEnv, _ matrixVariant, a matrixArchive) {
	pm := consumers.NewPodman(t)
	want := matrixPodmanNames{images: map[string]consumers.PodmanImage{}}
	var loaded []string
	for _, p := range a.parts {
		names, err := pm.Load(t.Context(), p.File)
		if err != nil {
			t.Fatal(err)
		}
		loaded = append(loaded, names...)
		w := matrixPodmanExpect(p)
		want.loaded = append(want.loaded, w.loaded...)
		for name, img := range w.images {
			want.images[name] = img
		}
	}

	t.Logf("podman %s loaded %q", pm.Version, loaded)
	slices.Sort(loaded)
	slices.Sort(want.loaded)
	if !slices.Equal(loaded, want.loaded) {
		t.Errorf("podman load reported %q\nwant %q", loaded, want.loaded)
	}
	got := pm.Images(t)
	for name, w := range want.images {
		g, ok := got[name]
		if !ok || g.ID != w.ID || w.Digest != "" && g.Digest != w.Digest {
			t.Errorf("podman image %s = %+v (present %v), want %+v", name, g, ok, w)
		}
	}
	if len(got) != len(want.images) {
		t.Errorf("podman holds %d names %v, want %d", len(got), got, len(want.images))
	}
}

// attemptMatrixSkopeoDocker inspects every image through docker-archive.
func attemptMatrixSkopeoDocker(t *testing.T, env *matrixEnv, _ matrixVariant,
	a matrixArchive) error {
	for _, p := range a.parts {
		for _, img := range p.Images {
			ref := matrixDockerArchiveRef(t, p, img)
			if _, err := env.skopeo.Inspect(t.Context(), ref); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkMatrixSkopeoDocker inspects every image through docker-archive: (manifest.json).
// skopeo has no registry manifest there: it synthesizes a Docker schema 2 manifest from the
// config and the layers it serves uncompressed, so the digest it prints hashes that
// synthesis and never equals a pushed manifest's. What is stable is its content, which
// must describe the first selected platform: the pushed config (digest and size), one
// layer per DiffID in order, each the size of the pushed layer decompressed, and the
// config's platform.
func checkMatrixSkopeoDocker(t *testing.T, env *matrixEnv, _ matrixVariant, a matrixArchive) {
	for _, p := range a.parts {
		for _, img := range p.Images {
			ref := matrixDockerArchiveRef(t, p, img)
			got, err := env.skopeo.Inspect(t.Context(), ref)
			if err != nil {
				t.Fatal(err)
			}

			checkMatrixSkopeoSynthesized(t, ref, got, img.Main)
		}
	}
}

// checkMatrixSkopeoSynthesized checks the manifest skopeo synthesized for ref, and what
// skopeo inspect reported, against main, the image it must describe.
func checkMatrixSkopeoSynthesized(t *testing.T, ref string, got consumers.SkopeoImage,
	main testimage.Image) {
	t.Helper()

	var m ocispec.Manifest
	if err := json.Unmarshal(got.Raw, &m); err != nil {
		t.Fatalf("decode skopeo's manifest of %s: %v\n%s", ref, err, got.Raw)
	}

	wantConfig := ocispec.Descriptor{MediaType: testimage.MediaTypeDockerConfig,
		Digest: main.Config.Digest(), Size: main.Config.Descriptor.Size}
	if m.MediaType != testimage.MediaTypeDockerManifest ||
		!reflect.DeepEqual(m.Config, wantConfig) {
		t.Errorf("skopeo inspect --raw %s: %s with config %+v\nwant %s with %+v", ref,
			m.MediaType, m.Config, testimage.MediaTypeDockerManifest, wantConfig)
	}

	var layers []digest.Digest
	var sizes []int64
	for _, l := range m.Layers {
		layers = append(layers, l.Digest)
		sizes = append(sizes, l.Size)
	}
	wantSizes := matrixDiffSizes(t, main)
	if !slices.Equal(layers, main.DiffIDs) || !slices.Equal(sizes, wantSizes) ||
		!slices.Equal(got.Layers, main.DiffIDs) {
		t.Errorf("skopeo inspect %s: layers %v of sizes %v (inspect says %v)\n"+
			"want the DiffIDs %v of sizes %v", ref, layers, sizes, got.Layers, main.DiffIDs,
			wantSizes)
	}

	if got.Os != main.Platform.OS || got.Architecture != main.Platform.Architecture {
		t.Errorf("skopeo inspect %s: %s/%s, want %s", ref, got.Os, got.Architecture,
			main.PlatformString())
	}
}

// matrixDiffSizes returns the sizes of main's layers decompressed, as the tars whose
// digests are its DiffIDs; each is checked to hash to its DiffID.
func matrixDiffSizes(t testing.TB, main testimage.Image) []int64 {
	t.Helper()

	var sizes []int64
	for i, l := range main.Layers {
		h := digest.SHA256.Digester()
		n, err := matrixDecompressLayer(h.Hash(), l)
		if err != nil {
			t.Fatalf("decompress layer %s: %v", l.Digest(), err)
		}

		if h.Digest() != main.DiffIDs[i] {
			t.Fatalf("layer %s decompresses to %s, want its DiffID %s", l.Digest(),
				h.Digest(), main.DiffIDs[i])
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// matrixDecompressLayer writes l decompressed, zstd or gzip as its media type says, to w
// and returns the bytes written.
func matrixDecompressLayer(w io.Writer, l testimage.Blob) (int64, error) {
	if strings.HasSuffix(l.Descriptor.MediaType, "zstd") {
		zr, err := zstd.NewReader(bytes.NewReader(l.Data))
		if err != nil {
			return 0, err
		}
		defer zr.Close()

		return io.Copy(w, zr)
	}

	zr, err := gzip.NewReader(bytes.NewReader(l.Data))
	if err != nil {
		return 0, err
	}

	return io.Copy(w, zr)
}

// matrixDockerArchiveRef addresses img in p: the file alone when manifest.json has one item, else
// by tag, or by item index for an untagged image.
func matrixDockerArchiveRef(t testing.TB, p matrixPart, img matrixImage) string {
	t.Helper()

	var items []manifestItem
	entryJSON(t, p.Entries, "manifest.json", &items)
	switch {
	case len(items) == 1:
		return "docker-archive:" + p.File
	case img.Familiar != "":
		return "docker-archive:" + p.File + ":" + img.Familiar
	}

	config := "blobs/sha256/" + img.Main.Config.Digest().Encoded()
	i := slices.IndexFunc(items, func(it manifestItem) bool { return it.Config == config })
	if i < 0 {
		t.Fatalf("%s: manifest.json has no item for %s", p.File, img.Name)
	}
	return fmt.Sprintf("docker-archive:%s:@%d", p.File, i)
}

// matrixOCIArchiveRef addresses img in p through oci-archive: by the file alone when index.json
// has one entry, as podman does, else by ref.name, which the variants keep unique in each
// archive.
func matrixOCIArchiveRef(t testing.TB, p matrixPart, img matrixImage) string {
	t.Helper()

	if p.IndexEntries == 1 {
		return "oci-archive:" + p.File
	}
	if n := matrixCountRefName(p, img.RefName); n > 1 {
		t.Fatalf("%s: %d entries have ref.name %q, which oci-archive cannot tell apart; "+
			"give the variant's images different tags", p.File, n, img.RefName)
	}
	return "oci-archive:" + p.File + ":" + img.RefName
}

// attemptMatrixSkopeoOCI inspects every image through oci-archive.
func attemptMatrixSkopeoOCI(t *testing.T, env *matrixEnv, _ matrixVariant, a matrixArchive) error {
	for _, p := range a.parts {
		for _, img := range p.Images {
			ref := matrixOCIArchiveRef(t, p, img)
			if _, err := env.skopeo.Inspect(t.Context(), ref); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkMatrixSkopeoOCI inspects every image through oci-archive: (index.json): the top-level
// document must be the registry's bytes, and the layers those of the host platform.
func checkMatrixSkopeoOCI(t *testing.T, env *matrixEnv, _ matrixVariant, a matrixArchive) {
	for _, p := range a.parts {
		for _, img := range p.Images {
			ref := matrixOCIArchiveRef(t, p, img)
			got, err := env.skopeo.Inspect(t.Context(), ref)
			if err != nil {
				t.Fatal(err)
			}

			var want []digest.Digest
			for _, l := range img.Main.Layers {
				want = append(want, l.Digest())
			}
			if got.Digest != img.Top.Digest() || string(got.Raw) != string(img.Top.Data) ||
				!slices.Equal(got.Layers, want) {
				t.Errorf("skopeo inspect %s = digest %s, layers %v\nwant %s, layers %v",
					ref, got.Digest, got.Layers, img.Top.Digest(), want)
			}
		}
	}
}

// matrixCountRefName counts p's images whose ref.name is refName.
func matrixCountRefName(p matrixPart, refName string) int {
	n := 0
	for _, img := range p.Images {
		if img.RefName == refName {
			n++
		}
	}
	return n
}
