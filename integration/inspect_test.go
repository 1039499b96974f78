package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/dlsproject/dls/integration/consumers"
	"github.com/dlsproject/dls/integration/registrytest"
	"github.com/dlsproject/dls/integration/testimage"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// inspectSeed seeds the layers of the inspect tests; testimage.NewRand logs it.
const inspectSeed = 20260601

// inspectLayers is the layer count of the inspect tests' image: enough that a layer in the
// middle of the archive can be damaged.
const inspectLayers = 3

// inspectRepo is the repository of the inspect tests' image, apart from the matrix's names
// in the host's shared Docker daemon.
const inspectRepo = "dls-inspect/saved"

// inspectReport is the report dls inspect --json prints: assemble.Report as encoding/json
// writes it. It is declared here rather than imported, as a script reading the output
// would see it, so a renamed field fails the assertions on its value.
type inspectReport struct {
	Path        string
	Compression string
	Bytes       int64
	Files       int
	Images      []inspectImage
	Defects     []inspectDefect
}

// inspectImage is one image of an inspectReport.
type inspectImage struct {
	Name      string
	RefName   string
	Target    ocispec.Descriptor
	RepoTags  []string
	Platforms []inspectPlatform
}

// inspectPlatform is one platform manifest of an inspectImage.
type inspectPlatform struct {
	Platform string
	Manifest digest.Digest
	Config   digest.Digest
	Layers   int
	Size     int64
	Complete bool
}

// inspectDefect is one defect of an inspectReport.
type inspectDefect struct {
	Where   string
	Problem string
}

// runInspect runs dls inspect --json on file and decodes the report it prints, which it
// prints whether or not it finds defects; the exit status is in the result.
func runInspect(t testing.TB, file string) (inspectReport, dlsResult) {
	t.Helper()

	res := runDLS(t, "", "inspect", "--json", file)
	var r inspectReport
	if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
		t.Fatalf("decode dls inspect --json %s (exit %d): %v\n%s", file, res.Code, err,
			res.Stdout)
	}
	return r, res
}

// inspectCompression is the compression dls inspect must detect in file, by its suffix.
func inspectCompression(file string) string {
	switch {
	case strings.HasSuffix(file, ".tar.gz"):
		return "gzip"
	case strings.HasSuffix(file, ".tar.zst"):
		return "zstd"
	default:
		return "none"
	}
}

// checkInspectTotals checks what r says of the archive as a whole: its path, compression
// (from file's suffix), the bytes of tarPath (the uncompressed tar, file itself for a .tar)
// and the regular files among entries.
func checkInspectTotals(t testing.TB, r inspectReport, file, tarPath string,
	entries []tarEntry) {
	t.Helper()

	info, err := os.Stat(tarPath)
	if err != nil {
		t.Fatal(err)
	}

	files := 0
	for _, e := range entries {
		if e.Header.Typeflag == tar.TypeReg {
			files++
		}
	}
	if r.Path != file || r.Compression != inspectCompression(file) || r.Bytes != info.Size() ||
		r.Files != files {
		t.Errorf("dls inspect %s: path %s, %s, %d bytes, %d files\nwant %s, %s, %d, %d",
			file, r.Path, r.Compression, r.Bytes, r.Files, file, inspectCompression(file),
			info.Size(), files)
	}
}

// inspectFixture is one image pushed to a registry, fetched and assembled into a .tar by
// the dls binary.
type inspectFixture struct {
	img     matrixImage
	archive matrixPart
}

// newInspectFixture pushes a single-manifest image of inspectLayers random layers for the
// host platform and writes its archive.
func newInspectFixture(t *testing.T) inspectFixture {
	t.Helper()

	reg := registrytest.Start(t, registrytest.Options{})
	registries := writeRegistries(t, "docker.io", reg.URL)
	rng := testimage.NewRand(t, inspectSeed)
	var layers []testimage.Layer
	for i := range inspectLayers {
		layers = append(layers, testimage.RandomLayer(t, rng, fmt.Sprintf("data/%d.bin", i),
			matrixLayerSize))
	}
	main := testimage.NewImage(t, testimage.ImageOptions{Platform: hostPlatform(t),
		Layers: layers})
	main.Push(t, reg, inspectRepo, "1")

	img := matrixTagged(inspectRepo, "1")
	img.Top, img.Main = main.Manifest, main
	a := buildMatrixArchive(t, matrixVariant{name: "inspect", images: []matrixImage{img}},
		registries)
	if len(a.parts) != 1 {
		t.Fatalf("dls assemble wrote %d archives, want 1", len(a.parts))
	}
	return inspectFixture{img: img, archive: a.parts[0]}
}

// TestInspectDockerSave has dls inspect read what docker save writes: one of our archives
// is loaded into the host's Docker and saved again, and the report must show the image
// under its name, with Docker's layer count and config, and no defect: docker save's
// layout (before 25: <v1 ID>/layer.tar and a repositories file giving v1 IDs; since 25:
// blobs and index.json) is as valid as ours.
func TestInspectDockerSave(t *testing.T) {
	fx := newInspectFixture(t)
	docker := consumers.NewDocker(t)
	loaded := docker.Load(t, fx.archive.File)
	if !slices.Equal(loaded, []string{fx.img.Familiar}) {
		t.Fatalf("docker load printed names %q, want %q", loaded, fx.img.Familiar)
	}

	saved := filepath.Join(t.TempDir(), "saved.tar")
	_, err := consumers.Output(t.Context(), "docker", "save", "-o", saved, fx.img.Familiar)
	if err != nil {
		t.Fatal(err)
	}

	out, err := consumers.Output(t.Context(), "docker", "image", "inspect", "--format",
		"{{len .RootFS.Layers}}", fx.img.Familiar)
	if err != nil {
		t.Fatal(err)
	}

	dockerLayers, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("docker image inspect printed %q, want a layer count", out)
	}

	entries := readTar(t, saved)
	var repos map[string]map[string]string
	entryJSON(t, entries, "repositories", &repos)
	t.Logf("docker save's repositories file: %v", repos)

	r, res := runInspect(t, saved)
	if res.Code != 0 || len(r.Defects) != 0 {
		t.Errorf("dls inspect %s: exit %d, defects %v; want 0 and none", saved, res.Code,
			r.Defects)
	}
	checkInspectTotals(t, r, saved, saved, entries)
	checkInspectSaved(t, fx, r, dockerLayers)
}

// checkInspectSaved checks r lists exactly the fixture's image, named as docker save
// names it, with the pushed config and as many layers as pushed and as Docker counts.
func checkInspectSaved(t *testing.T, fx inspectFixture, r inspectReport, dockerLayers int) {
	t.Helper()

	if len(r.Images) != 1 || len(r.Images[0].Platforms) != 1 {
		t.Fatalf("dls inspect lists images %+v, want one with one platform", r.Images)
	}

	img, p := r.Images[0], r.Images[0].Platforms[0]
	// docker save before 25 has no index.json, so the name is the RepoTag, familiar; since
	// 25 it is index.json's full name. Both name the image the list named.
	named, err := reference.ParseNormalizedNamed(img.Name)
	if err != nil || named.String() != fx.img.Name ||
		!slices.Equal(img.RepoTags, []string{fx.img.Familiar}) {
		t.Errorf("dls inspect names the image %q (%v), RepoTags %q\nwant %s, [%s]", img.Name,
			err, img.RepoTags, fx.img.Name, fx.img.Familiar)
	}

	if p.Layers != dockerLayers {
		t.Errorf("dls inspect counts %d layers, Docker %d", p.Layers, dockerLayers)
	}
	checkInspectPlatform(t, fx, p)
}

// checkInspectPlatform checks p is the fixture's image as pushed: its platform, config and
// layer count, and complete.
func checkInspectPlatform(t *testing.T, fx inspectFixture, p inspectPlatform) {
	t.Helper()

	main := fx.img.Main
	wantPlatform := testimage.FormatPlatform(main.Platform)
	if p.Layers != len(main.Layers) || p.Config != main.Config.Digest() ||
		p.Platform != wantPlatform || !p.Complete {
		t.Errorf("dls inspect platform %+v\nwant %d layers, config %s, %s, complete", p,
			len(main.Layers), main.Config.Digest(), wantPlatform)
	}
}

// TestInspectContainersImageSave has dls inspect read the docker-archive containers/image
// writes, through skopeo copy and through podman save: layers as <diff_id>.tar, and a
// repositories file giving the top layer's v1 ID, a directory whose layer.tar is a
// symbolic link to that file. The report must list the image under the name it was saved
// as, with the pushed config and layer count, and no defect.
func TestInspectContainersImageSave(t *testing.T) {
	fx := newInspectFixture(t)
	for _, tc := range []struct {
		name string
		save func(t *testing.T, fx inspectFixture, out string)
	}{
		{"skopeo copy", saveSkopeo},
		{"podman save", savePodman},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := filepath.Join(t.TempDir(), "saved.tar")
			tc.save(t, fx, saved)
			entries := readTar(t, saved)
			checkV1Link(t, entries)

			r, res := runInspect(t, saved)
			if res.Code != 0 || len(r.Defects) != 0 {
				t.Errorf("dls inspect %s: exit %d, defects %v; want 0 and none", saved,
					res.Code, r.Defects)
			}
			checkInspectTotals(t, r, saved, saved, entries)

			if len(r.Images) != 1 || len(r.Images[0].Platforms) != 1 {
				t.Fatalf("dls inspect lists images %+v, want one with one platform", r.Images)
			}

			// containers/image writes RepoTags fully qualified, and there is no index.json
			// to name the image otherwise.
			img := r.Images[0]
			if img.Name != fx.img.Name || !slices.Equal(img.RepoTags, []string{fx.img.Name}) {
				t.Errorf("dls inspect names the image %q, RepoTags %q; want %s for both",
					img.Name, img.RepoTags, fx.img.Name)
			}
			checkInspectPlatform(t, fx, img.Platforms[0])
		})
	}
}

// saveSkopeo copies the fixture's archive to a docker-archive at out with skopeo.
func saveSkopeo(t *testing.T, fx inspectFixture, out string) {
	consumers.RequireTools(t, "skopeo")
	_, err := consumers.Output(t.Context(), "env", "TMPDIR="+t.TempDir(), "skopeo",
		"--insecure-policy", "copy", "docker-archive:"+fx.archive.File+":"+fx.img.Name,
		"docker-archive:"+out+":"+fx.img.Name)
	if err != nil {
		t.Fatal(err)
	}
}

// savePodman loads the fixture's archive into a private podman storage and saves the image
// to out, as a docker-archive (podman save's default).
func savePodman(t *testing.T, fx inspectFixture, out string) {
	podman := consumers.NewPodman(t)
	loaded, err := podman.Load(t.Context(), fx.archive.File)
	if err != nil {
		t.Fatal(err)
	}

	if !slices.Equal(loaded, []string{fx.img.Name}) {
		t.Fatalf("podman load printed names %q, want %q", loaded, fx.img.Name)
	}

	_, err = podman.Podman(t.Context(), "save", "--format", "docker-archive", "-o", out,
		fx.img.Name)
	if err != nil {
		t.Fatal(err)
	}
}

// checkV1Link checks the saved archive is in the layout under test, so that a tool
// changing its layout fails here rather than passing without it: repositories gives a v1
// ID whose layer.tar is a symbolic link to manifest.json's top layer, and whose json is
// there for dls inspect to follow the parent chain down the layers.
func checkV1Link(t *testing.T, entries []tarEntry) {
	t.Helper()

	var items []struct{ Layers []string }
	entryJSON(t, entries, "manifest.json", &items)
	var repos map[string]map[string]string
	entryJSON(t, entries, "repositories", &repos)
	if len(items) != 1 || len(items[0].Layers) != inspectLayers || len(repos) != 1 {
		t.Fatalf("manifest.json %+v, repositories %v; want one image of %d layers", items,
			repos, inspectLayers)
	}

	var id string
	for _, tags := range repos {
		for _, v := range tags {
			id = v
		}
	}

	top := items[0].Layers[inspectLayers-1]
	var link, v1JSON bool
	for _, e := range entries {
		switch e.Header.Name {
		case id + "/layer.tar":
			link = e.Header.Typeflag == tar.TypeSymlink &&
				path.Join(id, e.Header.Linkname) == top
		case id + "/json":
			v1JSON = e.Header.Typeflag == tar.TypeReg
		}
	}
	if !link || !v1JSON {
		t.Fatalf("repositories gives v1 ID %s; want its layer.tar a symbolic link to the "+
			"top layer %s (%v) and its json a file (%v)", id, top, link, v1JSON)
	}
}

// inspectDamage is one way of damaging an archive: damage returns the damaged copy of the
// fixture's archive, written under dir, and the defects dls inspect must report, each a
// prefix of the defect's text.
type inspectDamage struct {
	name   string
	damage func(t *testing.T, fx inspectFixture, dir string) (string, []string)
	// more says further defects may follow the wanted ones: a cut loses every later entry,
	// and their absence is reported too.
	more bool
}

// TestInspectDamagedArchive damages a good archive one way at a time, on disk, and has the
// dls binary inspect it: each must exit with status 1, say on standard error how many
// defects it found, and list them on standard output, the damage (blob digest, missing
// entry, cut) named first.
func TestInspectDamagedArchive(t *testing.T) {
	fx := newInspectFixture(t)
	r, res := runInspect(t, fx.archive.File)
	if res.Code != 0 || len(r.Defects) != 0 {
		t.Fatalf("dls inspect of the undamaged archive: exit %d, defects %v; want 0, none",
			res.Code, r.Defects)
	}

	for _, tc := range []inspectDamage{
		{name: "one byte of a layer flipped", damage: damageFlipByte},
		{name: "cut inside a layer", damage: damageCutInLayer, more: true},
		{name: "cut before the tar trailer", damage: damageCutTrailer},
		{name: "a layer entry deleted", damage: damageDeleteLayer},
		{name: "gzip without its last 8 bytes", damage: damageGzipTrailer},
		{name: "zstd without its last 4 bytes", damage: damageZstdChecksum, more: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			damaged, want := tc.damage(t, fx, t.TempDir())
			res := runDLS(t, "", "inspect", damaged)
			var got []string
			for line := range strings.Lines(res.Stdout) {
				if d, ok := strings.CutPrefix(strings.TrimSpace(line), "defect: "); ok {
					got = append(got, d)
				}
			}

			wantErr := "dls: " + damaged + ": archive has defects: " +
				strconv.Itoa(len(got)) + " found"
			ok := res.Code == 1 && strings.Contains(res.Stderr, wantErr) &&
				(len(got) == len(want) || tc.more && len(got) > len(want))
			for i := 0; ok && i < len(want); i++ {
				ok = strings.HasPrefix(got[i], want[i])
			}
			if !ok {
				t.Errorf("dls inspect %s: exit %d, defects:\n%s\nstderr %q\nwant exit 1, "+
					"defects (prefixes; more after them %v):\n%s\nand %q", damaged, res.Code,
					strings.Join(got, "\n"), res.Stderr, tc.more, strings.Join(want, "\n"),
					wantErr)
			}
		})
	}
}

// inspectMiddleLayer is the layer the damage tests hit: one with entries either side.
func (fx inspectFixture) inspectMiddleLayer() testimage.Blob {
	return fx.img.Main.Layers[inspectLayers/2]
}

// blobEntry returns the offset of the content of blob's entry in the tar at path, as the
// tar reader finds it, and its header.
func blobEntry(t testing.TB, path string, blob testimage.Blob) (int64, *tar.Header) {
	t.Helper()

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	name := "blobs/sha256/" + blob.Digest().Encoded()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("find %s in %s: %v", name, path, err)
		}

		// The reader skips content by seeking, and leaves f at the content of the entry
		// it returned.
		if hdr.Name == name {
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				t.Fatal(err)
			}
			return off, hdr
		}
	}
}

// readArchiveFile returns the bytes of the fixture's archive.
func readArchiveFile(t testing.TB, fx inspectFixture) []byte {
	t.Helper()

	data, err := os.ReadFile(fx.archive.File)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// writeDamaged writes data to damaged.tar in dir.
func writeDamaged(t testing.TB, dir string, data []byte) string {
	t.Helper()

	path := filepath.Join(dir, "damaged.tar")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// damageFlipByte flips one bit in the middle of a layer's content: the tar stays readable,
// and only the blob's hash betrays it.
func damageFlipByte(t *testing.T, fx inspectFixture, dir string) (string, []string) {
	layer := fx.inspectMiddleLayer()
	off, hdr := blobEntry(t, fx.archive.File, layer)
	data := readArchiveFile(t, fx)
	data[off+hdr.Size/2] ^= 0x01
	return writeDamaged(t, dir, data), []string{"blobs/sha256/" + layer.Digest().Encoded() +
		": content hashes to sha256:"}
}

// damageCutInLayer cuts the archive in the middle of a layer's content.
func damageCutInLayer(t *testing.T, fx inspectFixture, dir string) (string, []string) {
	layer := fx.inspectMiddleLayer()
	off, hdr := blobEntry(t, fx.archive.File, layer)
	data := readArchiveFile(t, fx)
	return writeDamaged(t, dir, data[:off+hdr.Size/2]), []string{"blobs/sha256/" +
		layer.Digest().Encoded() + ": unreadable: unexpected EOF"}
}

// damageCutTrailer drops the tar trailer, the two zero blocks after the last entry: every
// entry is whole, but the archive is shorter than written.
func damageCutTrailer(t *testing.T, fx inspectFixture, dir string) (string, []string) {
	data := readArchiveFile(t, fx)
	cut := len(data) - 2*512
	if !slices.Equal(data[cut:], make([]byte, 2*512)) {
		t.Fatalf("%s does not end in two zero blocks", fx.archive.File)
	}
	return writeDamaged(t, dir, data[:cut]), []string{"archive: ends after " +
		strconv.Itoa(cut) + " bytes without the tar trailer; it was cut short"}
}

// damageDeleteLayer rewrites the archive without a layer's entry: both index.json's image
// and manifest.json's item then miss it.
func damageDeleteLayer(t *testing.T, fx inspectFixture, dir string) (string, []string) {
	layer := fx.inspectMiddleLayer()
	name := "blobs/sha256/" + layer.Digest().Encoded()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range fx.archive.Entries {
		if e.Header.Name == name {
			continue
		}

		if err := tw.WriteHeader(e.Header); err != nil {
			t.Fatal(err)
		}

		if _, err := tw.Write(e.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return writeDamaged(t, dir, buf.Bytes()), []string{
		"index.json manifests[0]: no platform has its config and every layer in the archive",
		`manifest.json[0]: layer "` + name + `" is not in the archive`,
	}
}

// damageGzipTrailer gzips the archive with Go's own gzip and cuts off the stream's last 8
// bytes, its CRC-32 and length: the tar decompresses whole, only the stream is short.
func damageGzipTrailer(t *testing.T, fx inspectFixture, dir string) (string, []string) {
	data := readArchiveFile(t, fx)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if _, err := gz.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "damaged.tar.gz")
	if err := os.WriteFile(path, buf.Bytes()[:buf.Len()-8], 0o644); err != nil {
		t.Fatal(err)
	}
	return path, []string{"archive: gzip stream ends early, after " + strconv.Itoa(len(data)) +
		" bytes of tar (unexpected EOF): the file was cut short, and gzip -t fails on it"}
}

// damageZstdChecksum compresses the archive with zstd's default settings, which end the
// frame with a 4-byte checksum, and cuts that off. The decoder holds back the last block
// then, so the end of the tar is lost too; the stream's cut must be named first.
func damageZstdChecksum(t *testing.T, fx inspectFixture, dir string) (string, []string) {
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := enc.Write(readArchiveFile(t, fx)); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "damaged.tar.zst")
	if err := os.WriteFile(path, buf.Bytes()[:buf.Len()-4], 0o644); err != nil {
		t.Fatal(err)
	}
	return path, []string{"archive: zstd stream ends early, after "}
}
