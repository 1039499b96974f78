package assemble

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestInspectFindsNoDefectInDLSArchives(t *testing.T) {
	for _, tc := range archiveCases {
		for _, suffix := range []string{".tar", ".tar.gz", ".tar.zst"} {
			t.Run(tc.name+" "+suffix, func(t *testing.T) {
				s := newTestSource(t)
				names, _, want := tc.build(t, s)
				path := filepath.Join(t.TempDir(), "images"+suffix)
				res, err := WriteFile(context.Background(), s, path, quietOptions(names...))
				if err != nil {
					t.Fatal(err)
				}

				r, err := Inspect(context.Background(), path)
				if err != nil {
					t.Fatal(err)
				}

				if !r.OK() || r.Path != path || r.Bytes != res.Bytes ||
					len(r.Images) != want.Images {
					t.Errorf("report %+v\nwant no defect, %d bytes, %d images", r, res.Bytes,
						want.Images)
				}

				wantCompression := map[string]string{".tar": "none", ".tar.gz": "gzip",
					".tar.zst": "zstd"}[suffix]
				if r.Compression != wantCompression {
					t.Errorf("compression %s, want %s", r.Compression, wantCompression)
				}
			})
		}
	}
}

func TestInspectReportsImages(t *testing.T) {
	s := newTestSource(t)
	names, _, _ := buildMultiArch(t, s)
	data, res := writeArchive(t, s, quietOptions(names...))
	r, err := inspectStream(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}

	img := s.images["ghcr.io/acme/app:v1"]
	var platforms []PlatformReport
	for _, child := range img.Children {
		platforms = append(platforms, wantPlatform(t, s, child))
	}

	want := Report{
		Compression: "none",
		Bytes:       res.Bytes,
		Files:       4 + res.Blobs,
		Images: []ImageReport{{
			Name:      img.Name,
			RefName:   "v1",
			Target:    img.Target,
			RepoTags:  []string{"ghcr.io/acme/app:v1"},
			Platforms: platforms,
		}},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("report\n%+v\nwant\n%+v", r, want)
	}

	if !platforms[0].Complete || platforms[1].Complete || platforms[2].Complete {
		t.Errorf("complete platforms %+v, want only the first", platforms)
	}
}

// wantPlatform describes the platform manifest desc from what s holds.
func wantPlatform(tb testing.TB, s *testSource, desc ocispec.Descriptor) PlatformReport {
	tb.Helper()
	var m ocispec.Manifest
	err := json.Unmarshal(s.readBlob(tb, desc.Digest), &m)
	if err != nil {
		tb.Fatal(err)
	}

	p := PlatformReport{
		Platform: platformString(desc.Platform),
		Manifest: desc.Digest,
		Config:   m.Config.Digest,
		Layers:   len(m.Layers),
		Complete: true,
	}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		p.Size += d.Size
		if _, ok := s.HasBlob(d.Digest); !ok {
			p.Complete = false
		}
	}

	return p
}

// rewriteArchive rewrites a tar stream, passing each regular file through edit, which
// returns the new content and whether to keep the entry.
func rewriteArchive(tb testing.TB, data []byte,
	edit func(name string, content []byte) ([]byte, bool)) []byte {
	tb.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, e := range readArchive(tb, data) {
		content, keep := e.data, true
		if e.hdr.Typeflag == tar.TypeReg {
			content, keep = edit(e.hdr.Name, e.data)
		}

		if !keep {
			continue
		}

		hdr := *e.hdr
		hdr.Size = int64(len(content))
		err := tw.WriteHeader(&hdr)
		if err != nil {
			tb.Fatal(err)
		}

		_, err = tw.Write(content)
		if err != nil {
			tb.Fatal(err)
		}
	}

	err := tw.Close()
	if err != nil {
		tb.Fatal(err)
	}

	return out.Bytes()
}

// editJSON decodes content into v, lets change alter it and encodes it again.
func editJSON[T any](tb testing.TB, content []byte, change func(*T)) []byte {
	tb.Helper()
	var v T
	err := json.Unmarshal(content, &v)
	if err != nil {
		tb.Fatal(err)
	}

	change(&v)
	out, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}

	return out
}

// defectFixture is a good archive of two single-manifest images and a multi-arch one.
type defectFixture struct {
	s          *testSource
	data       []byte
	a, b, arch builtManifest
	// children are the manifests the multi-arch image's index lists.
	children []ocispec.Descriptor
}

func newDefectFixture(t *testing.T) defectFixture {
	s := newTestSource(t)
	rng := newRand(t, 50)
	f := defectFixture{s: s}
	f.a = s.buildManifest(t, linuxAMD64, randomBytes(rng, 700), randomBytes(rng, 900))
	f.b = s.buildManifest(t, linuxAMD64, randomBytes(rng, 800))
	s.singleImage("docker.io/library/a:1", f.a)
	s.singleImage("docker.io/library/b:1", f.b)
	f.arch = s.buildManifest(t, linuxARM64, randomBytes(rng, 600))
	att := s.buildManifest(t, unknown, randomBytes(rng, 100))
	img := s.indexImage(t, "docker.io/library/c:1", f.arch, f.arch.desc, att.desc)
	f.children = img.Children
	f.data, _ = writeArchive(t, s, quietOptions())
	return f
}

func blobName(d digest.Digest) string {
	return "blobs/sha256/" + d.Encoded()
}

func TestInspectReportsDefects(t *testing.T) {
	f := newDefectFixture(t)
	aLayer := f.a.layers[0].Digest
	cases := []struct {
		name string
		edit func(name string, content []byte) ([]byte, bool)
		want []string
	}{
		{"corrupt layer", func(name string, c []byte) ([]byte, bool) {
			if name == blobName(aLayer) {
				c = append([]byte{}, c...)
				c[0] ^= 1
			}
			return c, true
		}, []string{blobName(aLayer) + ": content hashes to sha256:"}},
		{"missing attestation manifest", func(name string, c []byte) ([]byte, bool) {
			return c, name != blobName(f.children[1].Digest)
		}, []string{"index.json manifests[2] > manifests[1]: " +
			ocispec.MediaTypeImageManifest + " " + f.children[1].Digest.String() +
			" is not in the archive; importers fail with \"not found\""}},
		{"missing layer", func(name string, c []byte) ([]byte, bool) {
			return c, name != blobName(aLayer)
		}, []string{
			"index.json manifests[0]: no platform has its config and every layer in the " +
				"archive; the image cannot run",
			`manifest.json[0]: layer "` + blobName(aLayer) + `" is not in the archive; ` +
				"docker load and podman fail",
		}},
		{"index.json without names", func(name string, c []byte) ([]byte, bool) {
			if name == "index.json" {
				c = editJSON(t, c, func(idx *ocispec.Index) { idx.Manifests[1].Annotations = nil })
			}
			return c, true
		}, []string{
			"index.json manifests[1]: has no io.containerd.image.name; containerd imports " +
				"the image unnamed and k3s cannot pin it",
			"index.json manifests[1]: has no org.opencontainers.image.ref.name",
			"manifest.json[1]: tags docker.io/library/b:1 but index.json does not name it",
		}},
		{"index.json with a platform and a short name", func(name string, c []byte) ([]byte, bool) {
			if name == "index.json" {
				c = editJSON(t, c, func(idx *ocispec.Index) {
					idx.Manifests[0].Platform = &linuxAMD64
					idx.Manifests[0].Annotations[annotationImageName] = "a:1"
				})
			}
			return c, true
		}, []string{
			`index.json manifests[0]: io.containerd.image.name "a:1" is not a fully ` +
				"normalised reference; ctr import drops it",
			"index.json manifests[0]: has a platform; a host-only importer",
		}},
		{"digest in RepoTags and a layer count mismatch", func(name string, c []byte) ([]byte,
			bool) {
			if name == "manifest.json" {
				c = editJSON(t, c, func(items *[]manifestItem) {
					(*items)[1].RepoTags = []string{"b@" + f.b.desc.Digest.String()}
					(*items)[0].Layers = (*items)[0].Layers[:1]
				})
			}
			return c, true
		}, []string{
			"manifest.json[0]: 1 layers but config " + f.a.config.Digest.String() +
				" has 2 diff_ids; docker load and podman refuse the image",
			`manifest.json[1]: RepoTags entry "b@` + f.b.desc.Digest.String() +
				`" is not name:tag; docker load, podman and RKE2 reject the archive`,
			"index.json: names docker.io/library/b:1 but no manifest.json item tags it",
			"manifest.json[1]: tags b@" + f.b.desc.Digest.String() +
				" but index.json does not name it",
			`repositories["b"]["1"]: tags docker.io/library/b:1, which no manifest.json ` +
				"item tags",
		}},
		{"manifest.json tags other content", func(name string, c []byte) ([]byte, bool) {
			if name == "manifest.json" {
				c = editJSON(t, c, func(items *[]manifestItem) {
					(*items)[0].RepoTags, (*items)[1].RepoTags = (*items)[1].RepoTags,
						(*items)[0].RepoTags
				})
			}
			return c, true
		}, []string{
			"manifest.json[1]: tags docker.io/library/a:1 with config " +
				f.b.config.Digest.String() + ", which index.json's docker.io/library/a:1 " +
				"does not reach",
			"manifest.json[0]: tags docker.io/library/b:1 with config " +
				f.a.config.Digest.String(),
			`repositories["a"]["1"]: gives top layer "` + topHex(f.a) + `" for ` +
				"docker.io/library/a:1, but the top layer of manifest.json[1] is " +
				`"` + blobName(f.b.layers[0].Digest) + `", diff_id ` + f.b.diffIDs[0].String(),
			`repositories["b"]["1"]: gives top layer "` + topHex(f.b) + `" for ` +
				"docker.io/library/b:1, but the top layer of manifest.json[0] is " +
				`"` + blobName(f.a.layers[1].Digest) + `", diff_id ` + f.a.diffIDs[1].String(),
		}},
		{"no oci-layout", func(name string, c []byte) ([]byte, bool) {
			return c, name != "oci-layout"
		}, []string{"index.json: present without oci-layout; containerd's importer reads " +
			"manifest.json instead"}},
		{"no manifest.json", func(name string, c []byte) ([]byte, bool) {
			return c, name != "manifest.json"
		}, []string{"manifest.json: absent; docker load and RKE2's runtime image lookup " +
			"read only manifest.json"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := rewriteArchive(t, f.data, tc.edit)
			r, err := inspectStream(context.Background(), bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}

			checkDefects(t, r.Defects, tc.want)
		})
	}
}

// TestInspectAcceptsRepoTagForms checks both RepoTags spellings loaders accept: the fully
// qualified one dls writes and the familiar one docker save writes, each matched to the
// index.json name it normalises to.
func TestInspectAcceptsRepoTagForms(t *testing.T) {
	f := newDefectFixture(t)
	cases := []struct {
		name string
		tag  func(full string) string
		want []string
	}{
		{"fully qualified, as dls writes", func(full string) string { return full },
			[]string{"docker.io/library/a:1", "docker.io/library/b:1", "docker.io/library/c:1"}},
		{"familiar, as docker save writes", func(full string) string {
			return strings.TrimPrefix(full, "docker.io/library/")
		}, []string{"a:1", "b:1", "c:1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := rewriteArchive(t, f.data, func(name string, c []byte) ([]byte, bool) {
				if name == "manifest.json" {
					c = editJSON(t, c, func(items *[]manifestItem) {
						for _, it := range *items {
							it.RepoTags[0] = tc.tag(it.RepoTags[0])
						}
					})
				}
				return c, true
			})
			r, err := inspectStream(context.Background(), bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}

			var got []string
			for _, img := range r.Images {
				got = append(got, img.RepoTags...)
			}
			if !r.OK() || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("defects %v, RepoTags %v\nwant none, %v", r.Defects, got, tc.want)
			}
		})
	}
}

// topHex is the repositories file's ID of m's top layer: its diff_id's hex.
func topHex(m builtManifest) string {
	return m.diffIDs[len(m.diffIDs)-1].Encoded()
}

// TestInspectChecksRepositories edits the repositories file of a good archive: each entry
// must be a manifest.json tag and give that image's top layer, each tag must have an entry.
func TestInspectChecksRepositories(t *testing.T) {
	f := newDefectFixture(t)
	written := map[string]map[string]string{"a": {"1": topHex(f.a)}, "b": {"1": topHex(f.b)},
		"c": {"1": topHex(f.arch)}}
	aTop := `the top layer of manifest.json[0] is "` + blobName(f.a.layers[1].Digest) +
		`", diff_id ` + f.a.diffIDs[1].String()
	cases := []struct {
		name string
		edit func(repos map[string]map[string]string)
		// raw replaces the file when set.
		raw  string
		want []string
	}{
		{name: "as dls writes it", edit: func(repos map[string]map[string]string) {
			if !reflect.DeepEqual(repos, written) {
				t.Errorf("dls wrote repositories %v, want %v", repos, written)
			}
		}},
		{name: "fully qualified repositories", edit: func(repos map[string]map[string]string) {
			for _, repo := range []string{"a", "b", "c"} {
				repos["docker.io/library/"+repo] = repos[repo]
				delete(repos, repo)
			}
		}},
		{name: "a tag manifest.json lacks", edit: func(repos map[string]map[string]string) {
			repos["a"]["2"] = topHex(f.a)
		}, want: []string{`repositories["a"]["2"]: tags docker.io/library/a:2, which no ` +
			"manifest.json item tags; docker load without manifest.json would tag content"}},
		{name: "another image's top layer", edit: func(repos map[string]map[string]string) {
			repos["a"]["1"] = topHex(f.b)
		}, want: []string{`repositories["a"]["1"]: gives top layer "` + topHex(f.b) +
			`" for docker.io/library/a:1, but ` + aTop + "; docker load without " +
			"manifest.json would tag other content"}},
		{name: "the base layer", edit: func(repos map[string]map[string]string) {
			repos["a"]["1"] = f.a.diffIDs[0].Encoded()
		}, want: []string{`repositories["a"]["1"]: gives top layer "` +
			f.a.diffIDs[0].Encoded() + `" for docker.io/library/a:1, but ` + aTop}},
		{name: "a tag without entry", edit: func(repos map[string]map[string]string) {
			delete(repos, "b")
		}, want: []string{"manifest.json[1]: tags docker.io/library/b:1 but repositories " +
			"has no entry for it; docker load without manifest.json leaves it untagged"}},
		{name: "a key with a tag and a bad tag", edit: func(repos map[string]map[string]string) {
			repos["a:1"] = map[string]string{"1": topHex(f.a)}
			repos["b"]["-1"] = topHex(f.b)
		}, want: []string{
			`repositories["a:1"]["1"]: "a:1" is not a repository name without tag or digest`,
			`repositories["b"]["-1"]: "-1" is not a tag`,
		}},
		{name: "not an object", raw: `[{"a":{"1":"x"}}]`, want: []string{"repositories: is " +
			"not a JSON object of repository → tag → top layer ID"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := rewriteArchive(t, f.data, func(name string, c []byte) ([]byte, bool) {
				switch {
				case name != "repositories":
				case tc.raw != "":
					c = []byte(tc.raw)
				default:
					c = editJSON(t, c, func(repos *map[string]map[string]string) {
						tc.edit(*repos)
					})
				}
				return c, true
			})
			r, err := inspectStream(context.Background(), bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}

			checkDefects(t, r.Defects, tc.want)
		})
	}
}

// checkDefects asserts defects are as many as want and each starts with its want.
func checkDefects(tb testing.TB, defects []Defect, want []string) {
	tb.Helper()
	var got []string
	for _, d := range defects {
		got = append(got, d.String())
	}

	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.HasPrefix(got[i], want[i])
	}

	if !ok {
		tb.Errorf("defects:\n%s\nwant (prefixes):\n%s", strings.Join(got, "\n"),
			strings.Join(want, "\n"))
	}
}

func TestInspectCutStream(t *testing.T) {
	f := newDefectFixture(t)
	// Find where the first blob's entry starts: each entry is a header block and its
	// content padded to whole blocks.
	var offset int64
	for _, e := range readArchive(t, f.data) {
		if strings.HasPrefix(e.hdr.Name, "blobs/sha256/") && e.hdr.Size > 100 {
			break
		}
		offset += tarEntrySize(e.hdr.Size)
	}

	cases := []struct {
		name string
		cut  int64
		want string
	}{
		{"between entries", offset,
			"archive: ends after " + strconv.FormatInt(offset, 10) + " bytes without the " +
				"tar trailer; it was cut short"},
		{"inside a blob", offset + tarBlock + 50, ": unreadable: unexpected EOF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := inspectStream(context.Background(), bytes.NewReader(f.data[:tc.cut]))
			if err != nil {
				t.Fatal(err)
			}

			if len(r.Defects) == 0 || !strings.Contains(r.Defects[0].String(), tc.want) {
				t.Errorf("defects %v\nwant the cut reported first: %s", r.Defects, tc.want)
			}
		})
	}
}

func TestInspectZstdWindowOverK3sLimit(t *testing.T) {
	f := newDefectFixture(t)
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithWindowSize(64<<20))
	if err != nil {
		t.Fatal(err)
	}

	// Flushing before the end makes the encoder declare its window rather than the
	// content size, as it does for any stream larger than its window.
	_, err = enc.Write(f.data[:100])
	if err == nil {
		err = enc.Flush()
	}
	if err == nil {
		_, err = enc.Write(f.data[100:])
	}
	if err == nil {
		err = enc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}

	r, err := inspectStream(context.Background(), bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}

	checkDefects(t, r.Defects, []string{"archive: zstd window of 67108864 bytes is over " +
		"the 33554432 k3s decodes; recompress with --long=25 or less"})
}

func TestInspectMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.tar")
	_, err := Inspect(context.Background(), path)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v, want not exist", err)
	}
}

// legacyEntry is one entry of a hand-made archive: a file, or a link when link is set.
type legacyEntry struct {
	name, link string
	typeflag   byte
	data       []byte
}

func tarOf(tb testing.TB, entries []legacyEntry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typeflag := e.typeflag
		if typeflag == 0 {
			typeflag = tar.TypeReg
		}

		err := tw.WriteHeader(&tar.Header{Name: e.name, Linkname: e.link, Typeflag: typeflag,
			Mode: 0o644, Size: int64(len(e.data))})
		if err == nil {
			_, err = tw.Write(e.data)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}

	err := tw.Close()
	if err != nil {
		tb.Fatal(err)
	}

	return buf.Bytes()
}

// TestInspectLegacyDockerSave reads the layout docker save wrote before version 25: no
// index.json, configs and layers under arbitrary names, a repeated layer as a symlink.
func TestInspectLegacyDockerSave(t *testing.T) {
	rng := newRand(t, 60)
	l1, l2 := randomBytes(rng, 1500), randomBytes(rng, 700)
	config, err := json.Marshal(ocispec.Image{Platform: linuxAMD64, RootFS: ocispec.RootFS{
		Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(l1), digest.FromBytes(l2),
			digest.FromBytes(l1)},
	}})
	if err != nil {
		t.Fatal(err)
	}

	cfgName := digest.FromBytes(config).Encoded() + ".json"
	manifest := `[{"Config":"` + cfgName + `","RepoTags":["busybox:1.36"],"Layers":` +
		`["aaa/layer.tar","bbb/layer.tar","ccc/layer.tar"]}]`
	entries := []legacyEntry{
		{name: "aaa/", typeflag: tar.TypeDir},
		{name: "aaa/layer.tar", data: l1},
		{name: "bbb/layer.tar", data: l2},
		{name: "ccc/layer.tar", link: "../aaa/layer.tar", typeflag: tar.TypeSymlink},
		{name: cfgName, data: config},
		{name: "manifest.json", data: []byte(manifest)},
		// Before 25, docker save named the top layer by its v1 ID, its directory.
		{name: "repositories", data: []byte(`{"busybox":{"1.36":"ccc"}}`)},
	}
	data := tarOf(t, entries)
	r, err := inspectStream(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}

	want := Report{Compression: "none", Bytes: int64(len(data)), Files: 5,
		Images: []ImageReport{{
			Name:     "busybox:1.36",
			RepoTags: []string{"busybox:1.36"},
			Platforms: []PlatformReport{{Platform: "linux/amd64",
				Config: digest.FromBytes(config), Layers: 3, Complete: true,
				Size: int64(len(config) + 2*len(l1) + len(l2))}},
		}},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("report\n%+v\nwant\n%+v", r, want)
	}

	// A hard link, the same layer path standing for a second diff_id, and repositories
	// naming the base layer's directory rather than the top one's.
	entries[3] = legacyEntry{name: "ccc/layer.tar", link: "aaa/layer.tar",
		typeflag: tar.TypeLink}
	entries[5].data = []byte(strings.Replace(manifest, "ccc/layer.tar", "bbb/layer.tar", 1))
	entries[6].data = []byte(`{"busybox":{"1.36":"aaa"}}`)
	r, err = inspectStream(context.Background(), bytes.NewReader(tarOf(t, entries)))
	if err != nil {
		t.Fatal(err)
	}

	checkDefects(t, r.Defects, []string{
		"ccc/layer.tar: is a hard link; containerd's importer ignores hard links",
		`manifest.json[0]: layer "bbb/layer.tar" stands for two diff_ids; podman refuses that`,
		`repositories["busybox"]["1.36"]: gives top layer "aaa" for ` +
			`docker.io/library/busybox:1.36, but the top layer of manifest.json[0] is ` +
			`"bbb/layer.tar", diff_id ` + digest.FromBytes(l1).String(),
	})
}

// compressedFixture is a good archive of one image with two layers of megabytes, so that
// its compressed stream spans many blocks, and its report.
type compressedFixture struct {
	data   []byte
	image  builtManifest
	report Report
}

func newCompressedFixture(t *testing.T) compressedFixture {
	s := newTestSource(t)
	rng := newRand(t, 50)
	f := compressedFixture{}
	f.image = s.buildManifest(t, linuxAMD64, randomBytes(rng, 3<<20), randomBytes(rng, 2<<20))
	s.singleImage("docker.io/library/a:1", f.image)
	f.data, _ = writeArchive(t, s, quietOptions())
	r, err := inspectStream(context.Background(), bytes.NewReader(f.data))
	if err != nil || !r.OK() {
		t.Fatalf("undamaged archive: error %v, defects %v", err, r.Defects)
	}

	f.report = r
	return f
}

// compress compresses data with wrap, one of the writers dls writes archives with.
func compress(tb testing.TB, data []byte, wrap func(io.Writer) (io.WriteCloser, error),
) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := wrap(&buf)
	if err != nil {
		tb.Fatal(err)
	}

	_, err = w.Write(data)
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		tb.Fatal(err)
	}

	return buf.Bytes()
}

// decompressedLength decodes the stream z of compression c straight with the library, not
// through Inspect, and returns how many bytes it gives before failing.
func decompressedLength(tb testing.TB, c string, z []byte) int64 {
	tb.Helper()
	var r io.Reader
	var err error
	switch c {
	case "gzip":
		r, err = gzip.NewReader(bytes.NewReader(z))
	case "zstd":
		var dec *zstd.Decoder
		dec, err = zstd.NewReader(bytes.NewReader(z))
		if err == nil {
			defer dec.Close()
		}
		r = dec
	}
	if err != nil {
		tb.Fatal(err)
	}

	n, err := io.Copy(io.Discard, r)
	if err == nil {
		tb.Fatalf("%s stream decodes without error; the damage did not take", c)
	}

	return n
}

// entryCut names the regular file of the tar data whose content is cut by a stream giving
// only its first n bytes; "" when the cut is in a header, in padding or after the last
// entry.
func entryCut(tb testing.TB, data []byte, n int64) string {
	tb.Helper()
	var off int64
	for _, e := range readArchive(tb, data) {
		start := off + tarBlock
		if e.hdr.Typeflag == tar.TypeReg && start <= n && n < start+e.hdr.Size {
			return e.hdr.Name
		}
		off += tarEntrySize(e.hdr.Size)
	}

	return ""
}

// TestInspectDamagedCompression damages the compressed stream of a good archive, at its
// trailer (gzip's CRC-32 and length, zstd's checksum) or by cutting it. Go's tar reader
// stops at the tar trailer, before those last bytes, so Inspect must read on to the end to
// see them; and a cut must be reported as the compressed stream's, first, with the entry
// it cut absent rather than hashed in part.
func TestInspectDamagedCompression(t *testing.T) {
	f := newCompressedFixture(t)
	cut := func(n int) func([]byte) []byte {
		return func(z []byte) []byte { return z[:len(z)-n] }
	}
	flip := func(fromEnd int) func([]byte) []byte {
		return func(z []byte) []byte {
			z = append([]byte{}, z...)
			z[len(z)-fromEnd] ^= 0x01
			return z
		}
	}
	half := func(z []byte) []byte { return z[:len(z)/2] }
	cases := []struct {
		name        string
		compression string
		damage      func(z []byte) []byte
		// problem is how the defect describes the stream, after "<compression> stream ",
		// and cause the decompressor's error it quotes.
		problem, cause string
		// whole says the decompressor gives the whole tar before failing. The zstd
		// decoder holds back the last block of a frame whose checksum is cut off, so that
		// cut loses the end of the last layer.
		whole bool
	}{
		{"gzip without its last 8 bytes", "gzip", cut(8), "ends early", "unexpected EOF",
			true},
		{"gzip with its CRC-32 flipped", "gzip", flip(8), "fails its checksum",
			"gzip: invalid checksum", true},
		{"gzip with its length flipped", "gzip", flip(1), "fails its checksum",
			"gzip: invalid checksum", true},
		{"gzip cut in half", "gzip", half, "ends early", "unexpected EOF", false},
		{"zstd without its last 4 bytes", "zstd", cut(4), "ends early", "unexpected EOF",
			false},
		{"zstd with its checksum flipped", "zstd", flip(1), "fails its checksum",
			"CRC check failed", true},
		{"zstd cut in half", "zstd", half, "ends early", "unexpected EOF", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wrap := map[string]func(io.Writer) (io.WriteCloser, error){"gzip": gzipWriter,
				"zstd": zstdWriter}[tc.compression]
			z := tc.damage(compress(t, f.data, wrap))
			r, err := inspectStream(context.Background(), bytes.NewReader(z))
			if err != nil {
				t.Fatal(err)
			}

			n := decompressedLength(t, tc.compression, z)
			entry := entryCut(t, f.data, n)
			at := ""
			if entry != "" {
				at = ", inside " + entry
			}

			want := []string{fmt.Sprintf("archive: %s stream %s, after %d bytes of tar%s "+
				"(%s): the file ", tc.compression, tc.problem, n, at, tc.cause)}
			if tc.whole != (n == int64(len(f.data))) {
				t.Fatalf("the %s decoder gives %d bytes of the %d-byte tar; want the whole "+
					"tar %v", tc.compression, n, len(f.data), tc.whole)
			}

			if tc.whole {
				checkWholeTar(t, f, r, want)
				return
			}

			checkCutTar(t, f, r, entry, want)
		})
	}
}

// checkWholeTar checks the report of an archive whose compressed stream failed only after
// giving the whole tar: it is the undamaged archive's but for the one defect wanted.
func checkWholeTar(t *testing.T, f compressedFixture, r Report, want []string) {
	t.Helper()
	checkDefects(t, r.Defects, want)
	r.Defects = nil
	wantReport := f.report
	wantReport.Compression = r.Compression
	if !reflect.DeepEqual(r, wantReport) {
		t.Errorf("report\n%+v\nwant the undamaged one\n%+v", r, wantReport)
	}
}

// checkCutTar checks the report of an archive whose compressed stream was cut inside a
// layer: the cut first, then the layer missing, the image incomplete, and no defect
// blaming the layer's content.
func checkCutTar(t *testing.T, f compressedFixture, r Report, entry string, want []string) {
	t.Helper()
	isLayer := false
	for _, l := range f.image.layers {
		isLayer = isLayer || entry == blobName(l.Digest)
	}
	if !isLayer {
		t.Fatalf("the cut is in %q, not in a layer; the fixture no longer shows a cut layer",
			entry)
	}

	want = append(want,
		"index.json manifests[0]: no platform has its config and every layer in the archive",
		`manifest.json[0]: layer "`+entry+`" is not in the archive`)
	checkDefects(t, r.Defects, want)
	if len(r.Images) != 1 || len(r.Images[0].Platforms) != 1 ||
		r.Images[0].Platforms[0].Complete {
		t.Errorf("images %+v, want one with one incomplete platform", r.Images)
	}
}

// containersImageArchive is a hand-made archive in the layout containers/image writes for
// docker-archive: (podman save, skopeo copy): layers as <diff_id>.tar, and for each layer
// position a v1 directory whose layer.tar is a symbolic link to its <diff_id>.tar and whose
// json names the v1 ID below as parent. Its layers are l1, l2, l1 again.
type containersImageArchive struct {
	entries []legacyEntry
	// v1IDs are the v1 IDs of the layer positions, base first.
	v1IDs  []string
	config []byte
	l1, l2 []byte
}

func newContainersImageArchive(t *testing.T) containersImageArchive {
	rng := newRand(t, 70)
	a := containersImageArchive{l1: randomBytes(rng, 1500), l2: randomBytes(rng, 700)}
	layers := [][]byte{a.l1, a.l2, a.l1}
	var diffIDs []digest.Digest
	for _, l := range layers {
		diffIDs = append(diffIDs, digest.FromBytes(l))
	}

	var err error
	a.config, err = json.Marshal(ocispec.Image{Platform: linuxAMD64,
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}})
	if err != nil {
		t.Fatal(err)
	}

	d1, d2 := diffIDs[0].Encoded()+".tar", diffIDs[1].Encoded()+".tar"
	cfgName := digest.FromBytes(a.config).Encoded() + ".json"
	a.entries = []legacyEntry{{name: d1, data: a.l1}, {name: d2, data: a.l2},
		{name: cfgName, data: a.config}}
	parent := ""
	for i, d := range diffIDs {
		id := digest.FromString(parent + " " + d.String()).Encoded()
		v1, err := json.Marshal(map[string]string{"id": id, "parent": parent})
		if err != nil {
			t.Fatal(err)
		}

		a.entries = append(a.entries,
			legacyEntry{name: id + "/layer.tar", link: "../" + []string{d1, d2, d1}[i],
				typeflag: tar.TypeSymlink},
			legacyEntry{name: id + "/VERSION", data: []byte("1.0")},
			legacyEntry{name: id + "/json", data: v1})
		a.v1IDs = append(a.v1IDs, id)
		parent = id
	}

	manifest := `[{"Config":"` + cfgName + `","RepoTags":["docker.io/qa/imported:1"],` +
		`"Layers":["` + d1 + `","` + d2 + `","` + d1 + `"]}]`
	a.entries = append(a.entries, legacyEntry{name: "manifest.json", data: []byte(manifest)},
		legacyEntry{name: "repositories",
			data: []byte(`{"docker.io/qa/imported":{"1":"` + a.v1IDs[2] + `"}}`)})
	return a
}

// TestInspectContainersImageArchive reads the docker-archive layout of containers/image,
// whose repositories file gives the top layer's v1 ID, a directory whose layer.tar is a
// link to the file manifest.json lists. The link must lead to the top layer, and the v1
// IDs' parent chain must go down every layer: a repeated layer's lower v1 ID links to the
// same file but names a shorter image.
func TestInspectContainersImageArchive(t *testing.T) {
	a := newContainersImageArchive(t)
	data := tarOf(t, a.entries)
	r, err := inspectStream(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}

	// Regular files: two layers, the config, VERSION and json for each of three
	// positions, manifest.json and repositories.
	want := Report{Compression: "none", Bytes: int64(len(data)), Files: 11,
		Images: []ImageReport{{
			Name:     "docker.io/qa/imported:1",
			RepoTags: []string{"docker.io/qa/imported:1"},
			Platforms: []PlatformReport{{Platform: "linux/amd64",
				Config: digest.FromBytes(a.config), Layers: 3, Complete: true,
				Size: int64(len(a.config) + 2*len(a.l1) + len(a.l2))}},
		}},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("report\n%+v\nwant\n%+v", r, want)
	}

	mismatch := func(id string) []string {
		return []string{`repositories["docker.io/qa/imported"]["1"]: gives top layer "` + id +
			`" for docker.io/qa/imported:1, but the top layer of manifest.json[0] is "` +
			a.entries[0].name + `", diff_id ` + digest.FromBytes(a.l1).String() +
			"; docker load without manifest.json would tag other content"}
	}
	entryIndex := func(name string) int {
		return slices.IndexFunc(a.entries, func(e legacyEntry) bool { return e.name == name })
	}
	topLink, topJSON := entryIndex(a.v1IDs[2]+"/layer.tar"), entryIndex(a.v1IDs[2]+"/json")
	cases := []struct {
		name string
		edit func(entries []legacyEntry)
		want []string
	}{
		{"the base layer's v1 ID, linking to the same file", func(entries []legacyEntry) {
			entries[len(entries)-1].data = []byte(`{"docker.io/qa/imported":{"1":"` +
				a.v1IDs[0] + `"}}`)
		}, mismatch(a.v1IDs[0])},
		{"the middle layer's v1 ID", func(entries []legacyEntry) {
			entries[len(entries)-1].data = []byte(`{"docker.io/qa/imported":{"1":"` +
				a.v1IDs[1] + `"}}`)
		}, mismatch(a.v1IDs[1])},
		{"a top layer.tar linking to another layer", func(entries []legacyEntry) {
			entries[topLink].link = "../" + a.entries[1].name
		}, mismatch(a.v1IDs[2])},
		{"a parent chain one v1 ID short", func(entries []legacyEntry) {
			entries[topJSON].data = []byte(`{"id":"` + a.v1IDs[2] + `","parent":""}`)
		}, mismatch(a.v1IDs[2])},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			entries := slices.Clone(a.entries)
			tc.edit(entries)
			r, err := inspectStream(context.Background(), bytes.NewReader(tarOf(t, entries)))
			if err != nil {
				t.Fatal(err)
			}

			checkDefects(t, r.Defects, tc.want)
		})
	}
}
