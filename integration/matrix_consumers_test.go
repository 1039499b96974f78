package integration

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dlsproject/dls/integration/consumers"
	"github.com/dlsproject/dls/integration/testimage"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Consumer names, as subtests and in matrixLimits.
const (
	consumerImporter     = "containerd importer in-process"
	consumerCtrAll       = "ctr import --all-platforms"
	consumerCtrHost      = "ctr import host platform"
	consumerPodman       = "podman load"
	consumerSkopeoDocker = "skopeo inspect docker-archive"
	consumerSkopeoOCI    = "skopeo inspect oci-archive"
	consumerDocker       = "docker load"
	consumerInspect      = "dls inspect"
)

// matrixEnv holds the consumers every variant shares: one containerd (a namespace per
// variant), the host's Docker, skopeo, and the versions the limits depend on. Podman gets
// a private storage per variant.
type matrixEnv struct {
	host          ocispec.Platform
	ctrd          *consumers.Containerd
	docker        *consumers.Docker
	dockerVersion string
	// dockerContainerdStore says Docker keeps images in containerd (Docker ≥ 29 default)
	// rather than in its graphdriver layer store.
	dockerContainerdStore bool
	podmanVersion         string
	skopeo                *consumers.Skopeo
}

// newMatrixEnv starts the private containerd, checks Docker, podman and skopeo, and reads
// their versions.
func newMatrixEnv(t *testing.T) *matrixEnv {
	t.Helper()

	env := &matrixEnv{host: hostPlatform(t), ctrd: consumers.StartContainerd(t),
		docker: consumers.NewDocker(t), skopeo: consumers.NewSkopeo(t)}
	out, err := consumers.Output(t.Context(), "docker", "version", "--format",
		"{{.Server.Version}}")
	if err != nil {
		t.Fatal(err)
	}
	env.dockerVersion = strings.TrimSpace(out)
	out, err = consumers.Output(t.Context(), "docker", "info", "--format",
		"{{json .DriverStatus}}")
	if err != nil {
		t.Fatal(err)
	}
	env.dockerContainerdStore = strings.Contains(out, "io.containerd.snapshotter")
	env.podmanVersion = consumers.NewPodman(t).Version
	t.Logf("consumers: docker %s, podman %s, skopeo %s", env.dockerVersion,
		env.podmanVersion, env.skopeo.Version)
	return env
}

// matrixConsumer is one program reading the archives.
type matrixConsumer struct {
	name string
	// check reads the archive and asserts what the consumer made of it.
	check func(t *testing.T, env *matrixEnv, v matrixVariant, a matrixArchive)
	// attempt reads the archive and returns the consumer's error, for checkMatrixLimit.
	attempt func(t *testing.T, env *matrixEnv, v matrixVariant, a matrixArchive) error
}

// matrixConsumers read every variant's archive, concurrently.
var matrixConsumers = []matrixConsumer{
	{name: consumerImporter, check: checkMatrixImporter},
	{name: consumerCtrAll, check: func(t *testing.T, env *matrixEnv, v matrixVariant,
		a matrixArchive) {
		checkMatrixCtr(t, env, v, a, true)
	}},
	{name: consumerCtrHost, check: func(t *testing.T, env *matrixEnv, v matrixVariant,
		a matrixArchive) {
		checkMatrixCtr(t, env, v, a, false)
	}},
	{name: consumerPodman, check: checkMatrixPodman, attempt: attemptMatrixPodman},
	{name: consumerSkopeoDocker, check: checkMatrixSkopeoDocker,
		attempt: attemptMatrixSkopeoDocker},
	{name: consumerSkopeoOCI, check: checkMatrixSkopeoOCI, attempt: attemptMatrixSkopeoOCI},
	{name: consumerDocker, check: checkMatrixDockerLoad, attempt: attemptMatrixDockerLoad},
	{name: consumerInspect, check: checkMatrixInspect},
}

// checkMatrixCtr imports every part into one namespace of the shared containerd, from the
// uncompressed tar: ctr 1.6 does not decompress ("archive/tar: invalid tar header" on a
// .tar.gz), while k3s decompresses by extension before importing, as matrixDecompress
// does. The images must be named exactly as index.json says, pointing at the top-level
// digest; the host-platform import then runs the variant's hello image.
func checkMatrixCtr(t *testing.T, env *matrixEnv, v matrixVariant, a matrixArchive, all bool) {
	ns := matrixSlug(v.name) + "-host"
	if all {
		ns = matrixSlug(v.name) + "-all"
	}
	for _, p := range a.parts {
		env.ctrd.Import(t, ns, p.Tar, all)
	}

	want := matrixTopDigests(a.allImages())
	if got := env.ctrd.Images(t, ns); !maps.Equal(got, want) {
		t.Errorf("ctr images = %v\nwant %v", got, want)
	}
	if all || v.run == "" {
		return
	}

	wantOut := testimage.HelloOutput(env.host)
	if got := env.ctrd.Run(t, ns, v.run); got != wantOut {
		t.Errorf("ctr run %s printed %q, want %q", v.run, got, wantOut)
	}
}

// checkMatrixImporter imports every part, decompressed as k3s does, with containerd's Go
// importer (consumers.ImportInProcess: the code k3s links, newer than Debian's ctr), walking
// all platforms. The images must be named exactly as index.json says, pointing at the
// top-level digest.
func checkMatrixImporter(t *testing.T, _ *matrixEnv, _ matrixVariant, a matrixArchive) {
	got := map[string]digest.Digest{}
	for _, p := range a.parts {
		names, err := consumers.ImportInProcess(t.Context(), t.TempDir(), p.Tar)
		if err != nil {
			t.Fatal(err)
		}
		maps.Copy(got, names)
	}

	if want := matrixTopDigests(a.allImages()); !maps.Equal(got, want) {
		t.Errorf("containerd importer images = %v\nwant %v", got, want)
	}
}

// matrixDockerLoaded is what docker load reported for one variant.
type matrixDockerLoaded struct {
	names []string
	ids   []digest.Digest
}

// attemptMatrixDockerLoad loads every part and removes what it loaded when the test ends.
func attemptMatrixDockerLoad(t *testing.T, _ *matrixEnv, _ matrixVariant, a matrixArchive) error {
	_, err := matrixDockerLoad(t, a)
	return err
}

// matrixDockerLoad runs docker load on each part's file as written (Docker decompresses it
// itself) and returns the names and IDs it reports. At cleanup it removes them and the
// images loaded untagged, which docker load does not always report.
func matrixDockerLoad(t *testing.T, a matrixArchive) (matrixDockerLoaded, error) {
	var got matrixDockerLoaded
	t.Cleanup(func() {
		remove := got
		for _, img := range a.allImages() {
			if img.Familiar == "" {
				remove.ids = append(remove.ids, img.Main.Config.Digest())
			}
		}
		matrixRemoveDocker(t, remove)
	})
	for _, p := range a.parts {
		out, err := consumers.Output(t.Context(), "docker", "load", "-i", p.File)
		for line := range strings.Lines(out) {
			line = strings.TrimSpace(line)
			if name, ok := strings.CutPrefix(line, "Loaded image: "); ok {
				got.names = append(got.names, name)
			}
			if id, ok := strings.CutPrefix(line, "Loaded image ID: "); ok {
				got.ids = append(got.ids, digest.Digest(id))
			}
		}
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// matrixRemoveDocker untags the names, then deletes the untagged IDs, ignoring images
// already gone.
func matrixRemoveDocker(t testing.TB, loaded matrixDockerLoaded) {
	t.Helper()

	var refs []string
	refs = append(refs, loaded.names...)
	for _, id := range loaded.ids {
		refs = append(refs, id.String())
	}
	for _, ref := range refs {
		_, err := consumers.Output(context.Background(), "docker", "rmi", "--force", ref)
		if err != nil && !strings.Contains(err.Error(), "No such image") {
			t.Errorf("remove docker image %s: %v", ref, err)
		}
	}
}

// checkMatrixDockerLoad loads the parts into the host's Docker: every tag printed, each tag's
// image ID the config digest of the first selected platform; then it runs the variant's
// hello image.
//
// TODO: these are the graphdriver store's answers (Debian 12's Docker 20.10, and Docker ≤
// 28 by default). Docker 29 on the containerd store reads index.json, prints every name
// and uses top-level digests as IDs (FORMATS.md §2.2); add its expectations once CI runs
// such a daemon.
func checkMatrixDockerLoad(t *testing.T, env *matrixEnv, v matrixVariant, a matrixArchive) {
	got, err := matrixDockerLoad(t, a)
	if err != nil {
		t.Fatal(err)
	}

	t.Logf("docker %s loaded %q, IDs %q", env.dockerVersion, got.names, got.ids)
	var wantNames []string
	for _, img := range a.allImages() {
		if img.Familiar != "" {
			wantNames = append(wantNames, img.Familiar)
			matrixCheckDockerID(t, img.Familiar, img.Main.Config.Digest())
		}
	}
	var wantIDs []digest.Digest
	for _, p := range a.parts {
		wantIDs = append(wantIDs, matrixDockerIDs(t, p)...)
	}
	slices.Sort(got.names)
	slices.Sort(wantNames)
	if !slices.Equal(got.names, wantNames) || !slices.Equal(got.ids, wantIDs) {
		t.Errorf("docker load printed names %q and IDs %q\nwant %q and %q", got.names,
			got.ids, wantNames, wantIDs)
	}
	if v.run == "" {
		return
	}

	run := slices.IndexFunc(v.images, func(img matrixImage) bool { return img.Name == v.run })
	wantOut := testimage.HelloOutput(env.host)
	if out := env.docker.Run(t, v.images[run].Familiar); out != wantOut {
		t.Errorf("docker run %s printed %q, want %q", v.images[run].Familiar, out, wantOut)
	}
}

// matrixDockerIDs is what "Loaded image ID:" lines docker load prints for p. Docker's
// graphdriver load (tarexport.Load, seen on 20.10, the same code in current moby) counts
// the tags of the last manifest.json item only: when
// that item has none it prints the ID of every item, tagged or not, and otherwise none,
// so an untagged image before the last is loaded without a word. Each item's ID is its
// config digest.
func matrixDockerIDs(t testing.TB, p matrixPart) []digest.Digest {
	t.Helper()

	var items []manifestItem
	entryJSON(t, p.Entries, "manifest.json", &items)
	if len(items) == 0 || len(items[len(items)-1].RepoTags) > 0 {
		return nil
	}

	var ids []digest.Digest
	for _, it := range items {
		hex, _ := strings.CutPrefix(it.Config, "blobs/sha256/")
		ids = append(ids, digest.NewDigestFromEncoded(digest.SHA256, hex))
	}
	return ids
}

// matrixCheckDockerID checks that Docker's image name has the image ID want.
func matrixCheckDockerID(t *testing.T, name string, want digest.Digest) {
	t.Helper()

	out, err := consumers.Output(t.Context(), "docker", "image", "inspect", "--format",
		"{{.Id}}", name)
	if err != nil {
		t.Error(err)
		return
	}
	if got := digest.Digest(strings.TrimSpace(out)); got != want {
		t.Errorf("docker image %s has ID %s, want the config digest %s", name, got, want)
	}
}

// checkMatrixInspect runs dls inspect --json on every part as written, compressed or not:
// it must exit 0 with no defect, count the part's bytes and files, and list exactly the
// part's images, each with its name, top-level descriptor and RepoTags, and every platform
// manifest its index lists (attestations included) with its config, layers, size and
// whether the archive holds all of them.
func checkMatrixInspect(t *testing.T, env *matrixEnv, v matrixVariant, a matrixArchive) {
	selected := v.selected(env.host)
	for _, p := range a.parts {
		r, res := runInspect(t, p.File)
		if res.Code != 0 || len(r.Defects) != 0 {
			t.Errorf("dls inspect %s: exit %d, defects %v; want 0 and none", p.File,
				res.Code, r.Defects)
		}
		checkInspectTotals(t, r, p.File, p.Tar, p.Entries)

		got := map[string]inspectImage{}
		for _, img := range r.Images {
			slices.Sort(img.RepoTags)
			got[img.Name] = img
		}
		want := matrixInspectImages(p, selected)
		if len(r.Images) != len(want) {
			t.Errorf("dls inspect %s lists %d images, want %d", p.File, len(r.Images),
				len(want))
		}
		for name, w := range want {
			if g, ok := got[name]; !ok || !reflect.DeepEqual(g, w) {
				t.Errorf("dls inspect %s: image %s = %+v (listed %v)\nwant %+v", p.File,
					name, g, ok, w)
			}
		}
	}
}

// matrixInspectImages is what dls inspect must list for p's images, by name, with
// platforms selected: the top-level digest and the tags of its manifest.json item (sorted;
// none for a digest-only reference), which lists every tag of the same top-level digest.
func matrixInspectImages(p matrixPart, selected []string) map[string]inspectImage {
	tags := map[digest.Digest][]string{}
	for _, img := range p.Images {
		if img.Familiar != "" {
			tags[img.Top.Digest()] = append(tags[img.Top.Digest()], img.Name)
		}
	}

	want := map[string]inspectImage{}
	for _, img := range p.Images {
		top := img.Top.Descriptor
		repoTags := slices.Sorted(slices.Values(tags[top.Digest]))
		want[img.Name] = inspectImage{Name: img.Name, RefName: img.RefName,
			Target: ocispec.Descriptor{MediaType: top.MediaType, Digest: top.Digest,
				Size: top.Size},
			RepoTags:  repoTags,
			Platforms: matrixInspectPlatforms(img, selected),
		}
	}
	return want
}

// matrixInspectPlatforms is what dls inspect must report of img's platform manifests, in
// index order: the images (complete when selected), then the attestations, whose config
// and statement only --keep-attestations puts in the archive. A single manifest is its only
// platform, named from its config.
func matrixInspectPlatforms(img matrixImage, selected []string) []inspectPlatform {
	if img.Index == nil {
		m := img.Main
		return []inspectPlatform{matrixInspectPlatform(m.PlatformString(), m.Manifest,
			m.Config, m.Layers, true)}
	}

	var want []inspectPlatform
	for _, m := range img.Index.Images {
		complete := slices.Contains(selected, m.PlatformString())
		want = append(want, matrixInspectPlatform(m.PlatformString(), m.Manifest, m.Config,
			m.Layers, complete))
	}
	for _, att := range img.Index.Attestations {
		platform := testimage.FormatPlatform(*att.Manifest.Descriptor.Platform)
		want = append(want, matrixInspectPlatform(platform, att.Manifest, att.Config,
			[]testimage.Blob{att.Statement}, false))
	}
	return want
}

// matrixInspectPlatform describes one platform manifest as dls inspect reports it.
func matrixInspectPlatform(platform string, manifest, config testimage.Blob,
	layers []testimage.Blob, complete bool) inspectPlatform {
	p := inspectPlatform{Platform: platform, Manifest: manifest.Digest(),
		Config: config.Digest(), Layers: len(layers), Size: config.Descriptor.Size,
		Complete: complete}
	for _, l := range layers {
		p.Size += l.Descriptor.Size
	}
	return p
}
