package integration

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dlsproject/dls/integration/consumers"
	"github.com/dlsproject/dls/integration/testimage"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The k3s airgap list (a copy of k3s's scripts/airgap/image-list.txt) and the image of it
// that runs the hello program.
const (
	k3sList  = "testdata/k3s-images.txt"
	k3sHello = "docker.io/rancher/mirrored-pause:3.6"
)

// Annotations dls writes on index.json descriptors.
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// fetchSummary is the object dls fetch --json prints.
type fetchSummary struct {
	Images          int     `json:"images"`
	ImagesFailed    int     `json:"images_failed"`
	Blobs           int     `json:"blobs"`
	BlobsDownloaded int     `json:"blobs_downloaded"`
	BytesDownloaded int64   `json:"bytes_downloaded"`
	BlobsReused     int     `json:"blobs_reused"`
	BytesReused     int64   `json:"bytes_reused"`
	BytesResumed    int64   `json:"bytes_resumed"`
	Retries         int     `json:"retries"`
	Seconds         float64 `json:"seconds"`
}

func decodeSummary(t testing.TB, stdout string) fetchSummary {
	t.Helper()

	var s fetchSummary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("decode dls fetch --json output: %v\n%s", err, stdout)
	}

	s.Seconds = 0 // the only field a test cannot predict
	return s
}

// TestK3sImageList is the foundation test: the k3s airgap list, served by a docker.io mirror,
// fetched, assembled twice, and loaded by containerd and Docker, which run one image.
func TestK3sImageList(t *testing.T) {
	refs := readList(t, k3sList)
	if len(refs) != 8 {
		t.Fatalf("%s lists %d images, want 8", k3sList, len(refs))
	}
	fx := newFixture(t, refs, k3sHello)
	list, err := filepath.Abs(k3sList)
	if err != nil {
		t.Fatal(err)
	}

	work := t.TempDir()
	cache := filepath.Join(work, "cache")
	fetch := []string{"fetch", "--cache", cache, "--registries", fx.Registries, "--json", list}
	want := fx.hostBlobs()

	res := runDLS(t, work, fetch...)
	if res.Code != 0 {
		t.Fatalf("dls fetch: exit %d, want 0", res.Code)
	}
	t.Run("fetch downloads every needed blob once", func(t *testing.T) {
		checkFirstFetch(t, fx, res, cache, want)
	})

	archive, again := filepath.Join(work, "images.tar"), filepath.Join(work, "again.tar")
	for _, out := range []string{archive, again} {
		if res := runDLS(t, work, "assemble", "-o", out, "--cache", cache, list); res.Code != 0 {
			t.Fatalf("dls assemble -o %s: exit %d, want 0", out, res.Code)
		}
	}
	t.Run("assemble twice gives identical bytes", func(t *testing.T) {
		if a, b := fileDigest(t, archive), fileDigest(t, again); a != b {
			t.Fatalf("two assembles differ: %s and %s", a, b)
		}
	})

	entries := readTar(t, archive)
	t.Run("archive holds metadata then the needed blobs sorted", func(t *testing.T) {
		checkEntries(t, entries, want)
	})
	t.Run("index.json names every image by its index", func(t *testing.T) {
		checkIndexJSON(t, fx, entries)
	})
	t.Run("manifest.json lists the host image of every tag", func(t *testing.T) {
		checkManifestJSON(t, fx, entries)
	})
	t.Run("containerd imports and runs the archive", func(t *testing.T) {
		checkContainerd(t, fx, archive)
	})
	t.Run("docker loads and runs the archive", func(t *testing.T) {
		checkDocker(t, fx, archive)
	})
	t.Run("second fetch downloads no blob", func(t *testing.T) {
		checkRefetch(t, fx, work, fetch, want)
	})
}

// checkRefetch runs the same fetch again: everything is cached, so no blob is requested.
func checkRefetch(t *testing.T, fx *fixture, work string, fetch []string,
	want map[digest.Digest]testimage.Blob) {
	fx.Reg.ResetCounts()
	res := runDLS(t, work, fetch...)
	if res.Code != 0 {
		t.Fatalf("dls fetch again: exit %d, want 0", res.Code)
	}
	if n := fx.Reg.Requests("GET blob"); n != 0 {
		t.Errorf("second fetch made %d blob GETs, want 0", n)
	}
	got := decodeSummary(t, res.Stdout)
	wantSum := fetchSummary{Images: len(fx.Images), Blobs: len(want),
		BlobsReused: len(want), BytesReused: bodySize(want)}
	if got != wantSum {
		t.Errorf("second fetch summary = %+v\nwant %+v", got, wantSum)
	}
}

// checkFirstFetch checks a fetch into an empty cache: every needed blob downloaded exactly
// once (configs and layers shared between images too), nothing else cached.
func checkFirstFetch(t *testing.T, fx *fixture, res dlsResult, cache string,
	want map[digest.Digest]testimage.Blob) {
	got := decodeSummary(t, res.Stdout)
	wantSum := fetchSummary{Images: len(fx.Images), Blobs: len(want),
		BlobsDownloaded: len(want), BytesDownloaded: bodySize(want)}
	if got != wantSum {
		t.Errorf("fetch summary = %+v\nwant %+v", got, wantSum)
	}

	// Manifests come from /manifests/; only configs and layers are blob GETs.
	blobGETs := 0
	for _, b := range want {
		if !isManifest(b.Descriptor.MediaType) {
			blobGETs++
		}
	}
	if n := fx.Reg.Requests("GET blob"); n != blobGETs {
		t.Errorf("registry served %d blob GETs, want %d (one per distinct config and layer)",
			n, blobGETs)
	}

	cached := cachedBlobs(t, cache)
	for d, b := range want {
		if !cached[d] {
			t.Errorf("cache lacks %s %s", b.Descriptor.MediaType, d)
		}
	}
	for d := range cached {
		if _, ok := want[d]; !ok {
			t.Errorf("cache holds %s, which the host platform does not need", d)
		}
	}
}

func isManifest(mediaType string) bool {
	switch mediaType {
	case ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
		testimage.MediaTypeDockerManifestList, testimage.MediaTypeDockerManifest:
		return true
	}
	return false
}

// totalSize sums the sizes of blobs.
func totalSize(blobs map[digest.Digest]testimage.Blob) int64 {
	var n int64
	for _, b := range blobs {
		n += b.Descriptor.Size
	}
	return n
}

// bodySize sums the sizes of the configs and layers among blobs: the byte counts of dls's
// summary are of blob bodies, while manifests count only in the blob counts (resume.Stats).
func bodySize(blobs map[digest.Digest]testimage.Blob) int64 {
	var n int64
	for _, b := range blobs {
		if !isManifest(b.Descriptor.MediaType) {
			n += b.Descriptor.Size
		}
	}
	return n
}

// checkEntries compares the archive's entry names, in order, with what DESIGN.md promises,
// and every blob's bytes with the registry's.
func checkEntries(t *testing.T, entries []tarEntry, want map[digest.Digest]testimage.Blob) {
	wantNames := []string{"oci-layout", "index.json", "manifest.json", "repositories",
		"blobs/", "blobs/sha256/"}
	blobNames := make([]string, 0, len(want))
	for d := range want {
		blobNames = append(blobNames, "blobs/sha256/"+d.Encoded())
	}
	slices.Sort(blobNames)
	wantNames = append(wantNames, blobNames...)

	var names []string
	for _, e := range entries {
		names = append(names, e.Header.Name)
		if e.Header.Uid != 0 || e.Header.Gid != 0 || e.Header.Uname != "" {
			t.Errorf("%s: owner %d:%d %q, want 0:0 and no names", e.Header.Name,
				e.Header.Uid, e.Header.Gid, e.Header.Uname)
		}
		hex, isBlob := strings.CutPrefix(e.Header.Name, "blobs/sha256/")
		if !isBlob || hex == "" {
			continue
		}
		b, ok := want[digest.NewDigestFromEncoded(digest.SHA256, hex)]
		if ok && string(e.Data) != string(b.Data) {
			t.Errorf("%s: %d bytes differ from the registry's %d", e.Header.Name,
				len(e.Data), len(b.Data))
		}
	}
	if !slices.Equal(names, wantNames) {
		t.Errorf("archive entries:\n%s\nwant:\n%s", strings.Join(names, "\n"),
			strings.Join(wantNames, "\n"))
	}
}

// checkIndexJSON checks that index.json has one descriptor per image, named by its
// normalised reference and tag, pointing at the registry's index without a platform.
func checkIndexJSON(t *testing.T, fx *fixture, entries []tarEntry) {
	var index ocispec.Index
	entryJSON(t, entries, "index.json", &index)

	got := map[string]digest.Digest{}
	for _, desc := range index.Manifests {
		name := desc.Annotations[annotationImageName]
		got[name] = desc.Digest
		i := slices.IndexFunc(fx.Images, func(img listImage) bool { return img.Name == name })
		if i < 0 {
			continue
		}
		img := fx.Images[i]
		if desc.Annotations[annotationRefName] != img.Tag || desc.Platform != nil ||
			desc.MediaType != img.Index.Index.Descriptor.MediaType ||
			desc.Size != img.Index.Index.Descriptor.Size {
			t.Errorf("index.json descriptor of %s = %+v, want %s size %d, ref.name %s and "+
				"no platform", name, desc, img.Index.Index.Descriptor.MediaType,
				img.Index.Index.Descriptor.Size, img.Tag)
		}
	}
	if len(index.Manifests) != len(fx.Images) || !maps.Equal(got, fx.names()) {
		t.Errorf("index.json names = %v (%d descriptors)\nwant %v", got,
			len(index.Manifests), fx.names())
	}
}

// manifestItem is one entry of manifest.json.
type manifestItem struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// checkManifestJSON checks manifest.json has, for every image, its fully qualified tag, the
// host config and the host layers in order.
func checkManifestJSON(t *testing.T, fx *fixture, entries []tarEntry) {
	var items []manifestItem
	entryJSON(t, entries, "manifest.json", &items)

	got := map[string]manifestItem{}
	for _, item := range items {
		got[strings.Join(item.RepoTags, ",")] = item
	}
	for _, img := range fx.Images {
		host := fx.hostImage(t, img)
		// RepoTags are fully qualified (docker.io/rancher/x:tag), not docker save's familiar
		// form: podman would name a familiar one localhost/rancher/x:tag.
		want := manifestItem{Config: "blobs/sha256/" + host.Config.Digest().Encoded(),
			RepoTags: []string{img.Name}}
		for _, l := range host.Layers {
			want.Layers = append(want.Layers, "blobs/sha256/"+l.Digest().Encoded())
		}
		item := got[img.Name]
		if item.Config != want.Config || !slices.Equal(item.RepoTags, want.RepoTags) ||
			!slices.Equal(item.Layers, want.Layers) {
			t.Errorf("manifest.json item for %s = %+v\nwant %+v", img.Name, item, want)
		}
	}
	if len(items) != len(fx.Images) {
		t.Errorf("manifest.json has %d items, want %d", len(items), len(fx.Images))
	}
}

// checkContainerd imports the archive into a private containerd, with every platform (the
// strict walk k3s does, without skip-missing) and with the host's only, and runs hello.
func checkContainerd(t *testing.T, fx *fixture, archive string) {
	ctrd := consumers.StartContainerd(t)
	for _, tc := range []struct {
		namespace    string
		allPlatforms bool
	}{{"k8s.io", true}, {"host-only", false}} {
		ctrd.Import(t, tc.namespace, archive, tc.allPlatforms)
		if got := ctrd.Images(t, tc.namespace); !maps.Equal(got, fx.names()) {
			t.Errorf("ctr import (all platforms %v): images = %v\nwant %v", tc.allPlatforms,
				got, fx.names())
		}
	}

	wantOut := testimage.HelloOutput(fx.Host)
	if got := ctrd.Run(t, "k8s.io", fx.Hello.Name); got != wantOut {
		t.Errorf("ctr run %s printed %q, want %q", fx.Hello.Name, got, wantOut)
	}
}

// checkDocker loads the archive into the host's Docker and runs hello.
func checkDocker(t *testing.T, fx *fixture, archive string) {
	docker := consumers.NewDocker(t)
	got := docker.Load(t, archive)
	var want []string
	for _, img := range fx.Images {
		want = append(want, img.Familiar)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("docker load printed names %q\nwant %q", got, want)
	}

	wantOut := testimage.HelloOutput(fx.Host)
	if out := docker.Run(t, fx.Hello.Familiar); out != wantOut {
		t.Errorf("docker run %s printed %q, want %q", fx.Hello.Familiar, out, wantOut)
	}
}
