package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/dlsproject/dls/cache"
)

// runDLS runs the command line in-process, as main does, with empty standard input.
func runDLS(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	code = run(args, strings.NewReader(""), &out, &errOut)

	return code, out.String(), errOut.String()
}

// writeFile writes data to name under dir and returns its path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	err := os.WriteFile(path, data, 0o644)
	if err != nil {
		t.Fatal(err)
	}

	return path
}

// tarOf returns a tar archive holding one file, what "dls fetch a.tar" is given when the
// archive is passed where the list belongs.
func tarOf(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte(strings.Repeat("layer bytes\n", 2000))
	err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/x", Mode: 0o644,
		Size: int64(len(body))})
	if err == nil {
		_, err = tw.Write(body)
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatal(err)
	}

	return buf.Bytes()
}

// A binary passed as a list is one mistake: one line on stderr, not one per line of it.
func TestBinaryListIsOneError(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	elf, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"tar archive", tarOf(t)},
		{"executable", elf},
		{"NUL after valid lines", []byte("busybox:1\nBad\nalpine:3\n\x00\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list := writeFile(t, dir, "list", tt.data)
			noCache := filepath.Join(dir, "cache")

			code, stdout, stderr := runDLS(t, "fetch", "--cache", noCache, list)

			want := "dls: cannot use the image lists; fix these and run again:\n" + list +
				" is not a text image list (it holds NUL bytes); give a file with one " +
				"image reference per line\n"
			if code != exitUsage || stdout != "" || stderr != want {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit %d, no stdout, stderr:\n%s",
					code, stdout, stderr, exitUsage, want)
			}
			if _, err := os.Stat(noCache); !os.IsNotExist(err) {
				t.Errorf("fetch of a binary list created the cache %s", noCache)
			}
		})
	}
}

// A text list of many bad lines names the first 20, each with its line, and counts the
// rest in one more line.
func TestInvalidLinesAreCapped(t *testing.T) {
	dir := t.TempDir()
	var text strings.Builder
	for i := 1; i <= 10_581; i++ {
		fmt.Fprintf(&text, "Bad%d\n", i)
	}
	list := writeFile(t, dir, "bad.txt", []byte(text.String()))

	code, _, stderr := runDLS(t, "fetch", "--cache", filepath.Join(dir, "cache"), list)

	var want strings.Builder
	want.WriteString("dls: cannot use the image lists; fix these and run again:\n")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&want, "%s:%d: parse reference \"Bad%d\": invalid reference format: "+
			"repository name (library/Bad%d) must be lowercase\n", list, i, i, i)
	}
	fmt.Fprintf(&want, "%s: … and 10561 more invalid lines\n", list)
	if code != exitUsage || stderr != want.String() {
		t.Errorf("exit %d, stderr:\n%s\nwant exit %d, stderr:\n%s", code, stderr, exitUsage,
			want.String())
	}
}

// A merge source that is a directory but no dls cache is refused before --cache is opened,
// so the mistake leaves no new cache behind, even when another source is a cache.
func TestMergeOfNoCacheCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	notCache := filepath.Join(dir, "notacache")
	err := os.Mkdir(notCache, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, notCache, "notes.txt", []byte("not a cache\n"))

	shard := filepath.Join(dir, "shard")
	store, err := cache.Open(shard, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}

	err = store.Close()
	if err != nil {
		t.Fatal(err)
	}

	dst := filepath.Join(dir, "m3")
	code, stdout, stderr := runDLS(t, "merge", "--cache", dst, shard, notCache)

	want := "dls: merge: SRC " + notCache + " holds no dls cache (no index.db); give a " +
		"cache directory that dls fetch filled\n"
	if code != exitUsage || stdout != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit %d, no stdout, stderr:\n%s", code,
			stdout, stderr, exitUsage, want)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("merge of a directory that is no cache created %s (stat: %v)", dst, err)
	}
	entries, err := os.ReadDir(notCache)
	if err != nil || len(entries) != 1 {
		t.Errorf("the source %s now holds %d entries (%v), want only notes.txt", notCache,
			len(entries), err)
	}
}

// A deleted index.db leaves no damaged file to keep: verify --repair says it was missing
// instead of naming an empty path.
func TestRepairOfMissingIndexNamesNoFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	store, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}

	manifest := []byte(`{"schemaVersion":2}`)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest,
		Digest: digest.FromBytes(manifest), Size: int64(len(manifest))}
	err = store.PutBlob(desc, manifest)
	if err != nil {
		t.Fatal(err)
	}

	const name = "docker.io/library/busybox:1"
	err = store.PutImage(cache.Image{Name: name, Target: desc,
		Manifests: []ocispec.Descriptor{desc}, Blobs: []ocispec.Descriptor{desc}})
	if err != nil {
		t.Fatal(err)
	}

	err = store.Close()
	if err != nil {
		t.Fatal(err)
	}

	err = os.Remove(filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runDLS(t, "--log-level", "error", "verify", "--repair",
		"--cache", dir)

	wantOut := "rebuilt   index.db from 1 blob; it was missing, so no damaged file is kept\n"
	wantErr := "dls: index.db was missing and is rebuilt from 1 blob; the records of 1 " +
		"image were lost (" + name + "): re-run dls fetch with your lists to re-record the " +
		"images; no blob will be downloaded again. Until then dls prune runs only with " +
		"lists of the images to keep\n"
	if code != exitFailure || !strings.HasPrefix(stdout, wantOut) || stderr != wantErr {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit %d, stdout starting %q, "+
			"stderr %q", code, stdout, stderr, exitFailure, wantOut, wantErr)
	}
	if _, err := os.Stat(filepath.Join(dir, "index.db.damaged")); !os.IsNotExist(err) {
		t.Errorf("index.db.damaged exists after rebuilding a missing index (stat: %v)", err)
	}
}
