package cache

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestReadOnlyOpenOfNoCache(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) string
	}{
		{"absent directory", func(t *testing.T) string { return t.TempDir() + "/absent" }},
		{"empty directory", func(t *testing.T) string { return t.TempDir() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.setup(t)
			_, err := Open(dir, Options{ReadOnly: true, Logger: testLogger(t)})
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Open read-only: %v; want ErrNotFound", err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 0 {
				t.Errorf("read-only Open created %d entries in %s", len(entries), dir)
			}
		})
	}
}

func TestReadOnlyOpenWritesNothing(t *testing.T) {
	rng := newRand(t)
	dir := t.TempDir()
	writer := openCache(t, dir)
	descs, datas := putBlobs(t, writer, rng, 500, 700)
	img := testImage("docker.io/library/busybox:1.36", descs...)
	if err := writer.PutImage(img); err != nil {
		t.Fatal(err)
	}

	// The writer keeps its lock: readers must not need it.
	treeBefore := listTree(t, dir)
	dbBefore, _ := os.ReadFile(writer.path(dbFile))

	r := openReadOnly(t, dir)
	mustReadBlob(t, r, descs[1].Digest, datas[1])
	got, err := r.Image(img.Name)
	if err != nil || got.Target.Digest != img.Target.Digest {
		t.Fatalf("Image = %+v, %v; want target %s", got, err, img.Target.Digest)
	}

	writes := []struct {
		name string
		call func() error
	}{
		{"PutBlob", func() error { return r.PutBlob(descs[0], datas[0]) }},
		{"Ingest", func() error { _, err := r.Ingest(descs[0]); return err }},
		{"PutImage", func() error { return r.PutImage(img) }},
	}
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			if err := w.call(); !errors.Is(err, ErrReadOnly) {
				t.Fatalf("%s on a read-only cache: %v; want ErrReadOnly", w.name, err)
			}
		})
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	if tree := listTree(t, dir); !slices.Equal(tree, treeBefore) {
		t.Errorf("read-only use changed the tree:\n%v\nwas\n%v", tree, treeBefore)
	}
	if dbAfter, _ := os.ReadFile(writer.path(dbFile)); !bytes.Equal(dbAfter, dbBefore) {
		t.Errorf("read-only use changed %s", dbFile)
	}
}

func TestReadOnlyOpenOnReadOnlyFiles(t *testing.T) {
	rng := newRand(t)
	dir := t.TempDir()
	writer := openCache(t, dir)
	descs, datas := putBlobs(t, writer, rng, 300)
	if err := writer.Close(); err != nil {
		t.Fatal(err)
	}

	// As root the mode bits are not enforced; the test still shows no write is attempted
	// that would need them, and it bites when run as another user.
	chmod(t, "a-w", dir)
	t.Cleanup(func() { chmod(t, "u+w", dir) })

	r := openReadOnly(t, dir)
	mustReadBlob(t, r, descs[0].Digest, datas[0])
	if _, err := r.Images(); err != nil {
		t.Fatalf("Images on read-only files: %v", err)
	}
}

func TestReaderAlongsideBusyWriter(t *testing.T) {
	rng := newRand(t)
	dir := t.TempDir()
	writer := openCache(t, dir)
	descs, _ := putBlobs(t, writer, rng, 100)
	if err := writer.PutImage(testImage("example.com/a:1", descs...)); err != nil {
		t.Fatal(err)
	}
	reader := openReadOnly(t, dir)

	const rounds = 20
	done := make(chan error, 1)
	go func() {
		for i := range rounds {
			desc, data := randomBlob(t, newRandQuiet(), 50+i)
			if err := writer.PutBlob(desc, data); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	for range rounds {
		images, err := reader.Images()
		if err != nil || len(images) != 1 {
			t.Fatalf("Images while the writer works = %d images, %v; want 1", len(images), err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// chmod runs chmod -R mode on dir.
func chmod(t testing.TB, mode, dir string) {
	t.Helper()
	out, err := exec.Command("chmod", "-R", mode, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("chmod -R %s %s: %v: %s", mode, dir, err, out)
	}
}

func TestWriterNamesTheProcessWritingTheCache(t *testing.T) {
	dir := t.TempDir()
	writer := openCache(t, dir)
	reader := openReadOnly(t, dir)

	holder, busy := reader.Writer()
	if !busy || !strings.Contains(holder, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("Writer() = %q, %v while a writer is open; want this pid", holder, busy)
	}

	if err := writer.Close(); err != nil {
		t.Fatal(err)
	}
	if holder, busy := reader.Writer(); busy {
		t.Errorf("Writer() = %q, true after the writer closed", holder)
	}
}
