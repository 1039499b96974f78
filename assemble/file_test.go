package assemble

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// k3sZstdMemory is the decoder memory cap k3s (rancher/wharfie) reads .tar.zst with.
const k3sZstdMemory = 1 << 25

func gunzip(tb testing.TB, data []byte) []byte {
	tb.Helper()
	r, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		tb.Fatal(err)
	}

	if r.Name != "" || r.ModTime.Unix() > 0 {
		tb.Errorf("gzip header has name %q and time %v", r.Name, r.ModTime)
	}

	out, err := io.ReadAll(r)
	if err != nil {
		tb.Fatal(err)
	}

	return out
}

func unzstd(tb testing.TB, data []byte) []byte {
	tb.Helper()
	r, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderMaxMemory(k3sZstdMemory))
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()

	out, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("decode with k3s's memory cap: %v", err)
	}

	return out
}

func TestWriteFileCompressions(t *testing.T) {
	s := newTestSource(t)
	rng := newRand(t, 20)
	// Layers over the zstd window, so the window limit is exercised.
	m := s.buildManifest(t, linuxAMD64, randomBytes(rng, 9<<20), bytes.Repeat([]byte("dls"), 4<<20))
	img := s.singleImage("docker.io/library/big:1", m)
	plain, _ := writeArchive(t, s, quietOptions(img.Name))

	cases := []struct {
		name   string
		magic  []byte
		decode func(testing.TB, []byte) []byte
	}{
		{"images.tar", []byte("oci-layout"), func(_ testing.TB, b []byte) []byte { return b }},
		{"images.tar.gz", []byte{0x1f, 0x8b}, gunzip},
		{"images.tgz", []byte{0x1f, 0x8b}, gunzip},
		{"images.tar.zst", []byte{0x28, 0xb5, 0x2f, 0xfd}, unzstd},
		{"images.tzst", []byte{0x28, 0xb5, 0x2f, 0xfd}, unzstd},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.name)
			first := writeFile(t, s, path, img.Name)
			if !bytes.HasPrefix(first, tc.magic) {
				t.Errorf("starts with % x, want % x", first[:4], tc.magic)
			}

			if !bytes.Equal(tc.decode(t, first), plain) {
				t.Error("decoded archive differs from Write's stream")
			}

			if again := writeFile(t, s, path, img.Name); !bytes.Equal(first, again) {
				t.Error("a second run wrote different bytes")
			}

			if names := dirNames(t, dir); !slices.Equal(names, []string{tc.name}) {
				t.Errorf("directory holds %v", names)
			}
		})
	}
}

// writeFile runs WriteFile, checks its Result counts the tar stream, and returns the file.
func writeFile(tb testing.TB, src Source, path string, images ...string) []byte {
	tb.Helper()
	res, err := WriteFile(context.Background(), src, path, quietOptions(images...))
	if err != nil {
		tb.Fatalf("WriteFile: %v", err)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}

	if strings.HasSuffix(path, ".tar") && res.Bytes != int64(len(data)) {
		tb.Errorf("Result.Bytes = %d, file has %d", res.Bytes, len(data))
	}

	return data
}

func TestWriteFileRefusesNames(t *testing.T) {
	s := newTestSource(t)
	s.singleImage("docker.io/library/a:1", s.buildManifest(t, linuxAMD64, []byte("a")))
	supported := "; name it with one of .tar, .tar.gz, .tgz, .tar.zst, .tzst"
	cases := []struct {
		name, path, want string
	}{
		{"xz is not read by k3s", "images.tar.xz",
			`write archive DIR/images.tar.xz: unsupported extension ".xz"` + supported},
		{"upper case is not matched by k3s", "IMAGES.TAR",
			`write archive DIR/IMAGES.TAR: unsupported extension ".TAR"` + supported},
		{"no extension", "images", `write archive DIR/images: unsupported extension ""` + supported},
		{"standard output", "-",
			`write archive: the name "-" means standard output; stream it with Write instead`},
		{"missing directory", "nodir/images.tar",
			"create temporary file for DIR/nodir/images.tar: open DIR/nodir/.images.tar.tmp-"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.path
			if path != "-" {
				path = filepath.Join(dir, tc.path)
			}

			_, err := WriteFile(context.Background(), s, path, quietOptions())
			want := strings.ReplaceAll(tc.want, "DIR", dir)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %v\nwant %s", err, want)
			}

			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("left %v", names)
			}
		})
	}
}

func TestWriteFileReplacesOnlyWhenComplete(t *testing.T) {
	s := newTestSource(t)
	rng := newRand(t, 21)
	m := s.buildManifest(t, linuxAMD64, randomBytes(rng, 2000))
	img := s.singleImage("docker.io/library/a:1", m)
	dir := t.TempDir()
	path := filepath.Join(dir, "images.tar")
	err := os.WriteFile(path, []byte("previous archive"), 0o644)
	if err != nil {
		t.Fatal(err)
	}

	s.corruptBlob(t, m.layers[0].Digest)
	_, err = WriteFile(context.Background(), s, path, quietOptions(img.Name))
	if err == nil {
		t.Fatal("WriteFile succeeded with a corrupt layer")
	}

	if got, _ := os.ReadFile(path); string(got) != "previous archive" {
		t.Errorf("a failed run changed the existing file to %d bytes", len(got))
	}

	s.corruptBlob(t, m.layers[0].Digest) // flips the byte back
	data := writeFile(t, s, path, img.Name)
	want, _ := writeArchive(t, s, quietOptions(img.Name))
	if !bytes.Equal(data, want) {
		t.Error("the complete run did not replace the file")
	}

	if names := dirNames(t, dir); !slices.Equal(names, []string{"images.tar"}) {
		t.Errorf("directory holds %v", names)
	}
}

func TestWriteFileStopsWhenCancelled(t *testing.T) {
	s := newTestSource(t)
	img := s.singleImage("docker.io/library/a:1", s.buildManifest(t, linuxAMD64, []byte("a")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	_, err := WriteFile(ctx, s, filepath.Join(dir, "images.tar"), quietOptions(img.Name))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want %v", err, context.Canceled)
	}

	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left %v", names)
	}
}
