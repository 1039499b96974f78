package integration

import (
	"compress/gzip"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/integration/testimage"
)

// matrixK3sZstdMemory is the decoder memory cap k3s (rancher/wharfie) reads .tar.zst with; an
// archive whose zstd window exceeds it does not import there.
const matrixK3sZstdMemory = 1 << 25

// matrixArchive is what dls wrote for one variant: one part, or several when split.
type matrixArchive struct {
	parts []matrixPart
}

// matrixPart is one archive file.
type matrixPart struct {
	// File is the archive as written; Tar is the same tar uncompressed (File itself for a
	// .tar), decompressed the way k3s does it, by extension.
	File, Tar string
	// Images are the variant's images this part's index.json names, in variant order.
	Images []matrixImage
	// IndexEntries counts index.json's descriptors: with one, podman and skopeo read the
	// archive through index.json (oci-archive), else through manifest.json.
	IndexEntries int
	Entries      []tarEntry
}

// buildMatrixArchive fetches v's images into a new cache and writes the archive, with the
// dls binary.
func buildMatrixArchive(t *testing.T, v matrixVariant, registries string) matrixArchive {
	t.Helper()

	work := t.TempDir()
	var refs []string
	for _, img := range v.images {
		refs = append(refs, img.Ref)
	}
	list := writeFile(t, work, "images.txt", strings.Join(refs, "\n")+"\n")
	cacheDir := filepath.Join(work, "cache")

	fetch := []string{"fetch", "--cache", cacheDir, "--registries", registries}
	platforms := v.platforms
	if len(platforms) == 0 {
		platforms = []string{testimage.FormatPlatform(hostPlatform(t))}
	}
	for _, p := range platforms {
		fetch = append(fetch, "--platform", p)
	}
	if res := runDLS(t, work, append(fetch, list)...); res.Code != 0 {
		t.Fatalf("dls fetch: exit %d, want 0", res.Code)
	}

	var a matrixArchive
	for _, f := range assembleMatrix(t, v, work, cacheDir, list) {
		a.parts = append(a.parts, readMatrixPart(t, v, f))
	}
	return a
}

// assembleMatrix runs dls assemble as v says and returns the archives it wrote.
func assembleMatrix(t *testing.T, v matrixVariant, work, cacheDir, list string) []string {
	t.Helper()

	output := v.output
	if output == "" {
		output = "images.tar"
	}
	out := filepath.Join(work, output)
	args := []string{"assemble", "--cache", cacheDir, "-o", out}
	for _, p := range v.assemble {
		args = append(args, "--platform", p)
	}
	if v.maxSize > 0 {
		args = append(args, "--max-size", strconv.FormatInt(v.maxSize, 10))
	}
	if res := runDLS(t, work, append(args, list)...); res.Code != 0 {
		t.Fatalf("dls assemble: exit %d, want 0", res.Code)
	}

	if v.maxSize > 0 {
		return matrixSplitParts(t, out, len(v.images))
	}
	return []string{out}
}

// matrixSplitParts returns the archives a split of out into n parts must have written, "-1",
// "-2"… before the suffix, failing t when one is missing or out itself exists.
func matrixSplitParts(t testing.TB, out string, n int) []string {
	t.Helper()

	suffix := ".tar"
	for _, s := range []string{".tar.gz", ".tar.zst"} {
		if strings.HasSuffix(out, s) {
			suffix = s
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a split wrote %s itself, want only numbered parts", out)
	}

	var parts []string
	for i := 1; i <= n; i++ {
		part := fmt.Sprintf("%s-%d%s", strings.TrimSuffix(out, suffix), i, suffix)
		if _, err := os.Stat(part); err != nil {
			t.Fatalf("split into %d parts: %v", n, err)
		}
		parts = append(parts, part)
	}
	return parts
}

// readMatrixPart decompresses file (next to it) when its name says it is compressed,
// reads its entries and finds which of v's images its index.json names.
func readMatrixPart(t testing.TB, v matrixVariant, file string) matrixPart {
	t.Helper()

	p := matrixPart{File: file, Tar: matrixDecompress(t, file)}
	p.Entries = readTar(t, p.Tar)
	var index ocispec.Index
	entryJSON(t, p.Entries, "index.json", &index)
	p.IndexEntries = len(index.Manifests)
	for _, img := range v.images {
		for _, d := range index.Manifests {
			if d.Annotations[annotationImageName] == img.Name {
				p.Images = append(p.Images, img)
				break
			}
		}
	}
	return p
}

// matrixDecompress returns the path of file's tar: file itself when it is one, else a
// decompressed copy beside it. zstd is decoded under k3s's memory cap, so an archive with
// too large a window fails here as it would fail in k3s.
func matrixDecompress(t testing.TB, file string) string {
	t.Helper()

	in, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()

	var r io.Reader
	switch {
	case strings.HasSuffix(file, ".tar"):
		return file
	case strings.HasSuffix(file, ".tar.gz"):
		zr, err := gzip.NewReader(in)
		if err != nil {
			t.Fatalf("decompress %s: %v", file, err)
		}
		r = zr
	case strings.HasSuffix(file, ".tar.zst"):
		zr, err := zstd.NewReader(in, zstd.WithDecoderMaxMemory(matrixK3sZstdMemory))
		if err != nil {
			t.Fatalf("decompress %s: %v", file, err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("decompress %s: unknown suffix", file)
	}

	tarPath := strings.TrimSuffix(file, filepath.Ext(file))
	out, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, r); err != nil {
		t.Fatalf("decompress %s: %v", file, err)
	}
	return tarPath
}

// checkMatrixArchive checks every part: each blob once, sorted, after the metadata, exactly
// the blobs its images need for the selected platforms; index.json naming each of them;
// and every image of the variant in exactly one part.
func checkMatrixArchive(t *testing.T, v matrixVariant, a matrixArchive) {
	t.Helper()

	seen := map[string]string{}
	for _, p := range a.parts {
		want := map[digest.Digest]bool{}
		for _, img := range p.Images {
			if other, ok := seen[img.Name]; ok {
				t.Errorf("%s is in both %s and %s", img.Name, other, p.File)
			}
			seen[img.Name] = p.File
			for _, b := range img.blobsFor(v.selected(hostPlatform(t))) {
				want[b.Digest()] = true
			}
		}
		if p.IndexEntries != len(p.Images) {
			t.Errorf("%s: index.json has %d entries, %d of them the variant's images",
				p.File, p.IndexEntries, len(p.Images))
		}
		checkMatrixPartEntries(t, p, want)
	}
	for _, img := range v.images {
		if _, ok := seen[img.Name]; !ok {
			t.Errorf("no archive holds %s", img.Name)
		}
	}
	if v.maxSize > 0 && len(a.parts) != len(v.images) {
		t.Errorf("split wrote %d archives, want one per image (%d)", len(a.parts),
			len(v.images))
	}
}

// checkMatrixPartEntries checks the order and uniqueness of p's entries and its blob set.
func checkMatrixPartEntries(t *testing.T, p matrixPart, want map[digest.Digest]bool) {
	t.Helper()

	var names []string
	got := map[digest.Digest]bool{}
	for _, e := range p.Entries {
		names = append(names, e.Header.Name)
		if hex, ok := strings.CutPrefix(e.Header.Name, "blobs/sha256/"); ok && hex != "" {
			got[digest.NewDigestFromEncoded(digest.SHA256, hex)] = true
		}
	}
	meta := []string{"oci-layout", "index.json", "manifest.json"}
	if len(names) < 3 || !slices.Equal(names[:3], meta) {
		t.Errorf("%s starts with %q, want %q", p.File, names[:min(3, len(names))], meta)
	}
	blobs := slices.DeleteFunc(slices.Clone(names), func(n string) bool {
		return !strings.HasPrefix(n, "blobs/sha256/") || n == "blobs/sha256/"
	})
	if !slices.IsSorted(blobs) || len(slices.Compact(slices.Clone(blobs))) != len(blobs) {
		t.Errorf("%s: blobs are not each once in digest order:\n%s", p.File,
			strings.Join(blobs, "\n"))
	}
	if !maps.Equal(got, want) {
		t.Errorf("%s holds blobs %v\nwant %v", p.File, slices.Sorted(maps.Keys(got)),
			slices.Sorted(maps.Keys(want)))
	}
}

// allImages returns the images of every part, in part order.
func (a matrixArchive) allImages() []matrixImage {
	var images []matrixImage
	for _, p := range a.parts {
		images = append(images, p.Images...)
	}
	return images
}
