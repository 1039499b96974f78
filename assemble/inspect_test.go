package assemble

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

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
