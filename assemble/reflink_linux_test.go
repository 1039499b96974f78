package assemble

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dlsproject/dls/cache"
)

// On XFS with reflink (mkfs.xfs's default), the archive shares the cache's extents: writing
// it costs the disk little beyond its headers, and its bytes are those written elsewhere.
// The file system is a real XFS on a loop device, so the test needs root and xfsprogs.
func TestArchiveSharesExtentsWithTheCacheOnXFS(t *testing.T) {
	mnt := mountXFS(t)
	s := newTestSource(t)
	rng := newRand(t, 50)
	m := s.buildManifest(t, linuxAMD64, randomBytes(rng, 24<<20), randomBytes(rng, 9<<20+123))
	img := s.singleImage("docker.io/library/shared:1", m)
	want, res := writeArchive(t, s, quietOptions(img.Name))
	var blobBytes int64
	for _, b := range m.blobs() {
		blobBytes += b.Size
	}

	c := cacheIn(t, s, filepath.Join(mnt, "cache"))
	free := freeBytes(t, mnt)
	out := filepath.Join(mnt, "images.tar")
	got, err := WriteFile(context.Background(), c, out, quietOptions(img.Name))
	if err != nil {
		t.Fatal(err)
	}
	used := free - freeBytes(t, mnt)

	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Both layers are cloned; the config and manifest are under a block and copied.
	if !bytes.Equal(data, want) || got.Hashed != 0 || got.Cloned != 2 {
		t.Errorf("archive on XFS: same bytes as the stream %v, %d of %d blobs hashed, %d "+
			"cloned; want true, 0, 2", bytes.Equal(data, want), got.Hashed, res.Blobs,
			got.Cloned)
	}
	// Unshared, the archive would take every blob byte again; shared, the headers, the
	// metadata files and each blob's last block, which the padding after it writes into.
	if used > blobBytes/8 {
		t.Errorf("writing a %d-byte archive of %d blob bytes took %d bytes of disk; want "+
			"under %d, the extents shared", len(data), blobBytes, used, blobBytes/8)
	}
	t.Logf("archive %d bytes, %d of them blobs; disk used %d bytes", len(data), blobBytes,
		used)

	// A copy of the cache (new inodes, so nothing is vouched for, as for a cache carried
	// across) is hashed, and still cloned: the same bytes at the same small cost.
	carried := filepath.Join(mnt, "carried")
	out2, err := exec.Command("cp", "-a", c.Dir(), carried).CombinedOutput()
	if err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out2)
	}
	cc, err := cache.Open(carried, cache.Options{ReadOnly: true, Logger: quietOptions().Logger})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	free = freeBytes(t, mnt)
	again := filepath.Join(mnt, "again.tar")
	got, err = WriteFile(context.Background(), cc, again, quietOptions(img.Name))
	if err != nil {
		t.Fatal(err)
	}
	used = free - freeBytes(t, mnt)
	data, err = os.ReadFile(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) || got.Hashed != res.Blobs || got.Cloned != 2 ||
		used > blobBytes/8 {
		t.Errorf("carried cache: same bytes %v, %d of %d blobs hashed, %d cloned, %d bytes "+
			"of disk; want true, all, 2, under %d", bytes.Equal(data, want), got.Hashed,
			res.Blobs, got.Cloned, used, blobBytes/8)
	}

	// A damaged blob in the carried cache fails the archive, and nothing is left at its name.
	layer := filepath.Join(carried, "blobs", "sha256", m.layers[0].Digest.Encoded())
	flipByte(t, layer, 1000)
	bad := filepath.Join(mnt, "bad.tar")
	_, err = WriteFile(context.Background(), cc, bad, quietOptions(img.Name))
	if !errors.Is(err, cache.ErrCorrupt) {
		t.Errorf("damaged carried blob: error %v, want ErrCorrupt", err)
	}
	if _, statErr := os.Stat(bad); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("damaged carried blob: %s exists (%v)", bad, statErr)
	}
}

// flipByte inverts the byte at off of the file at path, in place.
func flipByte(tb testing.TB, path string, off int64) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()

	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	if err == nil {
		b[0] ^= 0xff
		_, err = f.WriteAt(b, off)
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// mountXFS makes a 1 GiB XFS image under a temporary directory, mounts it on a loop device
// and returns the mount point, unmounted when the test ends.
func mountXFS(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	image, mnt := filepath.Join(dir, "xfs.img"), filepath.Join(dir, "mnt")
	err := os.Mkdir(mnt, 0o755)
	if err == nil {
		err = os.WriteFile(image, nil, 0o644)
	}
	if err == nil {
		err = os.Truncate(image, 1<<30)
	}
	if err != nil {
		tb.Fatal(err)
	}

	for _, args := range [][]string{
		{"mkfs.xfs", "-q", "-m", "reflink=1", image},
		{"mount", "-o", "loop", image, mnt},
	} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			tb.Fatalf("%v: %v\n%s(needs root, a loop device and xfsprogs: apt-get install "+
				"xfsprogs)", args, err, out)
		}
	}
	tb.Cleanup(func() {
		out, err := exec.Command("umount", mnt).CombinedOutput()
		if err != nil {
			tb.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	})

	return mnt
}

// freeBytes syncs the file system at dir and returns its free bytes.
func freeBytes(tb testing.TB, dir string) int64 {
	tb.Helper()
	f, err := os.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()

	var st unix.Statfs_t
	err = unix.Syncfs(int(f.Fd()))
	if err == nil {
		err = unix.Fstatfs(int(f.Fd()), &st)
	}
	if err != nil {
		tb.Fatal(err)
	}

	return int64(st.Bfree) * st.Bsize
}
