package cache

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// unchanged opens the blob d of the cache at dir afresh and asks Unchanged about its file.
func unchanged(t *testing.T, dir string, d digest.Digest) bool {
	t.Helper()

	c, err := Open(dir, Options{ReadOnly: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	f, err := c.OpenBlob(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	return c.Unchanged(d, f)
}

func TestUnchangedVouchesOnlyForTheVerifiedFile(t *testing.T) {
	f := newFixture(t)
	if err := f.c.Close(); err != nil {
		t.Fatal(err)
	}

	for _, d := range []digest.Digest{f.a1.Digest, f.a2.Digest, f.orph.Digest} {
		if !unchanged(t, f.dir, d) {
			t.Errorf("blob %s just committed: Unchanged = false, want true", d)
		}
	}

	// chmod moves the ctime: the file may have been changed since, so it is hashed.
	if err := os.Chmod(f.c.blobPath(f.a1.Digest), 0o644); err != nil {
		t.Fatal(err)
	}
	if unchanged(t, f.dir, f.a1.Digest) {
		t.Errorf("blob %s after chmod: Unchanged = true, want false", f.a1.Digest)
	}

	// The same bytes in another file (a restore, a copy back) are another file.
	path := f.c.blobPath(f.a2.Digest)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, blobMode); err != nil {
		t.Fatal(err)
	}
	if unchanged(t, f.dir, f.a2.Digest) {
		t.Errorf("blob %s rewritten: Unchanged = true, want false", f.a2.Digest)
	}

	// A blob dropped from the index takes its record along.
	c := openCache(t, f.dir)
	if _, err := c.Prune(context.Background(), []string{nameA, nameB}, false); err != nil {
		t.Fatal(err)
	}
	stamps, err := c.readStamps()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := stamps[f.orph.Digest]; ok {
		t.Errorf("pruned blob %s still has a verified-file record", f.orph.Digest)
	}
	if _, ok := stamps[f.sh.Digest]; !ok {
		t.Errorf("kept blob %s lost its verified-file record", f.sh.Digest)
	}
}

func TestStampRoundTripAndRefusals(t *testing.T) {
	if bootID() == [16]byte{} {
		t.Fatal("no boot ID read from /proc/sys/kernel/random/boot_id")
	}

	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, []byte("content"), 0o444); err != nil {
		t.Fatal(err)
	}
	s, ok := stampPath(path)
	if !ok {
		t.Fatalf("no stamp for %s", path)
	}
	if s.boot != bootID() || s.size != 7 || s.ino == 0 || s.mount == 0 {
		t.Errorf("stamp = %+v, want this boot, 7 bytes, an inode and a mount ID", s)
	}
	if got, ok := decodeStamp(s.encode()); !ok || got != s {
		t.Errorf("decode(encode(%+v)) = %+v, %v", s, got, ok)
	}
	if _, ok := decodeStamp(s.encode()[:40]); ok {
		t.Error("a 40-byte record of an earlier format decoded as a stamp")
	}

	// A ctime kept to the millisecond or coarser could hide a change within the tick.
	stx := unix.Statx_t{Mask: statxMask, Ino: 1, Size: 7, Mnt_id: 3,
		Ctime: unix.StatxTimestamp{Sec: 1700000000, Nsec: 120_000_000}}
	if _, ok := stampFrom(&stx); ok {
		t.Error("a ctime of whole milliseconds got a stamp")
	}
	stx.Ctime.Nsec = 120_000_123
	if _, ok := stampFrom(&stx); !ok {
		t.Error("a nanosecond ctime got no stamp")
	}
	stx.Mask &^= unix.STATX_MNT_ID | unix.STATX_MNT_ID_UNIQUE
	if _, ok := stampFrom(&stx); ok {
		t.Error("a stat without a mount ID got a stamp")
	}
}
