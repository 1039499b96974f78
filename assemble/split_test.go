package assemble

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestTarSizeIsExact(t *testing.T) {
	for _, tc := range archiveCases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestSource(t)
			names, _, _ := tc.build(t, s)
			plans, err := prepare(context.Background(), s, quietOptions(names...))
			if err != nil {
				t.Fatal(err)
			}

			c, err := newContent(plans)
			if err != nil {
				t.Fatal(err)
			}

			data, _ := writeArchive(t, s, quietOptions(names...))
			size, err := c.tarSize()
			if err != nil || size != int64(len(data)) {
				t.Errorf("tarSize %d, %v; archive %d bytes", size, err, len(data))
			}
		})
	}
}

func TestTarEntrySize(t *testing.T) {
	cases := []struct {
		size, want int64
	}{
		{0, 512},
		{1, 1024},
		{512, 1024},
		{513, 1536},
		{maxUSTARSize, 512 + maxUSTARSize + 1},
		{maxUSTARSize + 1, 1536 + maxUSTARSize + 1},
	}
	for _, tc := range cases {
		if got := tarEntrySize(tc.size); got != tc.want {
			t.Errorf("tarEntrySize(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}

// splitFixture is four images in name order a, b, c, d; b and c share a layer.
type splitFixture struct {
	a, b, c, d builtManifest
	names      []string
}

func newSplitFixture(t *testing.T, s *testSource) splitFixture {
	rng := newRand(t, 40)
	shared := randomBytes(rng, 1000)
	f := splitFixture{
		a: s.buildManifest(t, linuxAMD64, randomBytes(rng, 10000)),
		b: s.buildManifest(t, linuxAMD64, shared, randomBytes(rng, 10000)),
		c: s.buildManifest(t, linuxAMD64, shared, randomBytes(rng, 20000)),
		d: s.buildManifest(t, linuxAMD64, randomBytes(rng, 8000)),
	}
	for i, m := range []builtManifest{f.a, f.b, f.c, f.d} {
		name := fmt.Sprintf("docker.io/library/%c:1", 'a'+i)
		s.singleImage(name, m)
		f.names = append(f.names, name)
	}

	return f
}

// wantPart is the archive of the single-manifest images named names, built from ms.
func wantPart(s *testSource, names []string, ms ...builtManifest) wantArchive {
	var want wantArchive
	var entries, items, repos []string
	for i, m := range ms {
		img := s.images[names[i]]
		repo := strings.TrimSuffix(strings.TrimPrefix(names[i], "docker.io/library/"), ":1")
		entries = append(entries, wantIndexEntry(img.Target, img.Name, "1"))
		items = append(items, wantItem(m, names[i]))
		repos = append(repos, fmt.Sprintf(`%q:{"1":%q}`, repo, top(m)))
		want.blobs = append(want.blobs, m.blobs()...)
	}

	want.index = wantIndex(entries...)
	want.manifest = wantManifest(items...)
	want.repositories = "{" + strings.Join(repos, ",") + "}"
	return want
}

// contentSize is the tar size of an archive of the named images.
func contentSize(t *testing.T, s *testSource, names ...string) int64 {
	plans, err := prepare(context.Background(), s, quietOptions(names...))
	if err != nil {
		t.Fatal(err)
	}

	c, err := newContent(plans)
	if err != nil {
		t.Fatal(err)
	}

	size, err := c.tarSize()
	if err != nil {
		t.Fatal(err)
	}

	return size
}

func TestWriteFileSplitsBySize(t *testing.T) {
	s := newTestSource(t)
	f := newSplitFixture(t, s)
	// a and b fit together; c does not fit with them, nor with d.
	maxSize := contentSize(t, s, f.names[0], f.names[1])
	if contentSize(t, s, f.names[2], f.names[3]) <= maxSize {
		t.Fatal("the fixture's c and d fit together")
	}

	dir := t.TempDir()
	var logs bytes.Buffer
	opts := Options{MaxSize: maxSize, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	stale := filepath.Join(dir, "images-4.tar")
	err := os.WriteFile(stale, []byte("old"), 0o644)
	if err != nil {
		t.Fatal(err)
	}

	res, err := WriteFile(context.Background(), s, filepath.Join(dir, "images.tar"), opts)
	if err != nil {
		t.Fatal(err)
	}

	wantFiles := []string{filepath.Join(dir, "images-1.tar"), filepath.Join(dir, "images-2.tar"),
		filepath.Join(dir, "images-3.tar")}
	if !slices.Equal(res.Files, wantFiles) {
		t.Fatalf("files %v, want %v", res.Files, wantFiles)
	}

	wants := []wantArchive{
		wantPart(s, f.names[:2], f.a, f.b),
		wantPart(s, f.names[2:3], f.c),
		wantPart(s, f.names[3:], f.d),
	}
	var total int64
	for i, path := range res.Files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}

		checkArchive(t, s, data, wants[i])
		if int64(len(data)) > maxSize {
			t.Errorf("%s is %d bytes, over %d", path, len(data), maxSize)
		}
		total += int64(len(data))
	}

	// The layer b and c share is in two archives: 3+4 blobs, then 4, then 3.
	if res.Images != 4 || res.Blobs != 14 || res.Bytes != total {
		t.Errorf("Result %+v, want 4 images, 14 blobs, %d bytes", res, total)
	}

	if !strings.Contains(logs.String(), "path="+stale) {
		t.Errorf("no warning about %s in the log:\n%s", stale, logs.String())
	}
}

func TestWriteFileSplitsManifestJSON(t *testing.T) {
	s := newTestSource(t)
	// Each item lists 8,000 paths: about 640 kB, so two do not fit in 1 MiB.
	a := s.repeatedLayerImage(t, "docker.io/library/a:1", "a", 8000)
	b := s.repeatedLayerImage(t, "docker.io/library/b:1", "b", 8000)
	dir := t.TempDir()
	res, err := WriteFile(context.Background(), s, filepath.Join(dir, "x.tar.zst"),
		quietOptions())
	if err != nil {
		t.Fatal(err)
	}

	wantFiles := []string{filepath.Join(dir, "x-1.tar.zst"), filepath.Join(dir, "x-2.tar.zst")}
	if !slices.Equal(res.Files, wantFiles) {
		t.Fatalf("files %v, want %v", res.Files, wantFiles)
	}

	names := []string{"docker.io/library/a:1", "docker.io/library/b:1"}
	for i, m := range []builtManifest{a, b} {
		data, err := os.ReadFile(res.Files[i])
		if err != nil {
			t.Fatal(err)
		}

		checkArchive(t, s, unzstd(t, data), wantPart(s, names[i:i+1], m))
	}

	var buf bytes.Buffer
	_, err = Write(context.Background(), s, &buf, quietOptions())
	wantErr := "write archive: the images need 2 archives to keep each under the size " +
		"limits; write them to a file, which splits them"
	if err == nil || err.Error() != wantErr || buf.Len() != 0 {
		t.Errorf("Write error %v, %d bytes written\nwant %s", err, buf.Len(), wantErr)
	}
}

func TestWriteFileImageOverMaxSize(t *testing.T) {
	s := newTestSource(t)
	f := newSplitFixture(t, s)
	maxSize := contentSize(t, s, f.names[2]) - 1
	dir := t.TempDir()
	_, err := WriteFile(context.Background(), s, filepath.Join(dir, "images.tar"),
		Options{MaxSize: maxSize, Logger: quietOptions().Logger})
	want := fmt.Sprintf("write image docker.io/library/c:1: even alone in an archive, it "+
		"would be %d bytes, over the maximum archive size of %d; an image cannot be split "+
		"across archives", maxSize+1, maxSize)
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}

	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left %v", names)
	}
}

func TestPartPaths(t *testing.T) {
	cases := []struct {
		path string
		n    int
		want []string
	}{
		{"images.tar", 1, []string{"images.tar"}},
		{"images.tar", 2, []string{"images-1.tar", "images-2.tar"}},
		{"out/k3s.tar.zst", 2, []string{"out/k3s-1.tar.zst", "out/k3s-2.tar.zst"}},
		{"a.b.tgz", 3, []string{"a.b-1.tgz", "a.b-2.tgz", "a.b-3.tgz"}},
	}
	for _, tc := range cases {
		comp, err := compressionFor(tc.path)
		if err != nil {
			t.Fatal(err)
		}

		if got := partPaths(tc.path, comp, tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("partPaths(%s, %d) = %v, want %v", tc.path, tc.n, got, tc.want)
		}
	}
}
