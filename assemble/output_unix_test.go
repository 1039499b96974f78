//go:build unix

package assemble

import (
	"context"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// TestWriteFileRefusesFIFOOutput checks that a named pipe at the output name is refused
// rather than replaced by the archive.
func TestWriteFileRefusesFIFOOutput(t *testing.T) {
	s := newTestSource(t)
	s.singleImage("docker.io/library/a:1", s.buildManifest(t, linuxAMD64, []byte("a")))
	dir := t.TempDir()
	path := filepath.Join(dir, "images.tar")
	err := syscall.Mkfifo(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}

	_, err = WriteFile(context.Background(), s, path, quietOptions())
	want := "check output " + path + ": it is not a regular file (mode prw-r--r--), and " +
		"writing the archive would replace it; name a file"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}

	if names := dirNames(t, dir); !slices.Equal(names, []string{"images.tar"}) {
		t.Errorf("directory holds %v", names)
	}
}
