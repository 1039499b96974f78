package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// xfs runs the direct fetch and assemble again on an XFS file system with reflink (the
// default of mkfs.xfs, and of RHEL, where RKE2 runs), made in an image file and mounted on a
// loop device: there assemble's copy_file_range clones each aligned blob body instead of
// copying it. Beside them: the floors, assemble against cat on that file system, and the
// disk space the archive took. It needs root and mkfs.xfs; without them the report says
// why it did not run.
func (b *bench) xfs(ctx context.Context) error {
	fmt.Fprintf(os.Stderr, "bench: xfs: dls, floors, assemble vs cat\n")
	mnt, unmount, err := mountXFS(b.path("xfs.img"), b.path("xfs"),
		3*b.corpus.uniqueBytes()+1<<30)
	if err != nil {
		b.addFact("XFS with reflink", "not run: %v", err)
		return nil
	}
	defer unmount()

	list, _, err := b.writeList("xfs.txt", b.reg.Host, len(b.corpus.tags))
	if err != nil {
		return err
	}
	cacheDir, archive := filepath.Join(mnt, "cache"), filepath.Join(mnt, "dls.tar")
	b.dlsFetchAssemble(ctx, "xfs", nil, list, cacheDir, archive)
	b.floorRow(ctx, "xfs", b.reg.Host, nil, discardFloor, "")
	floorDir := filepath.Join(mnt, "disk-floor")
	if err := os.Mkdir(floorDir, 0o755); err != nil {
		return err
	}
	b.floorRow(ctx, "xfs", b.reg.Host, nil, diskFloor, floorDir)
	if err := os.RemoveAll(floorDir); err != nil {
		return err
	}

	os.Remove(archive)
	before, err := freeBytes(mnt)
	if err != nil {
		return err
	}
	res := runChild(ctx, b.cfg.logPath, b.cfg.dls, "--log-level", "warn", "--cache",
		cacheDir, "assemble", "-o", archive, list)
	after, err := freeBytes(mnt)
	if err := firstErr(res.err, err); err != nil {
		return err
	}
	fi, err := os.Stat(archive)
	if err != nil {
		return err
	}
	// The cold run's archive was removed first, so the difference is this one's blocks.
	b.addFact("XFS: disk space of a new archive", "%s for a %s archive (free space before "+
		"and after writing it, synced)", human(max(before-after, 0)), human(fi.Size()))

	m, err := b.measureAssembleVsCat(ctx, cacheDir, list, mnt)
	if err != nil {
		return err
	}
	b.addFact("XFS: dls assemble ÷ cat", "%.2f× (assemble %s, cat %s; medians of %d)",
		m.asm.elapsed.Seconds()/m.cat.elapsed.Seconds(), seconds(m.asm.elapsed),
		seconds(m.cat.elapsed), assembleRounds)
	return nil
}

// mountXFS makes an XFS file system of size bytes in image and mounts it on dir through a
// loop device; unmount undoes both.
func mountXFS(image, dir string, size int64) (mnt string, unmount func(), err error) {
	if os.Geteuid() != 0 {
		return "", nil, fmt.Errorf("needs root to mount a loop device")
	}
	if _, err := exec.LookPath("mkfs.xfs"); err != nil {
		return "", nil, fmt.Errorf("mkfs.xfs missing (apt-get install xfsprogs)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	f, err := os.Create(image)
	if err == nil {
		err = f.Truncate(size)
		f.Close()
	}
	if err != nil {
		return "", nil, err
	}

	for _, args := range [][]string{
		{"mkfs.xfs", "-q", "-f", "-m", "reflink=1", image},
		{"mount", "-o", "loop", image, dir},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			os.Remove(image)
			return "", nil, fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err,
				strings.TrimSpace(string(out)))
		}
	}
	return dir, func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: umount %s: %v: %s\n", dir, err, out)
		}
		os.Remove(image)
	}, nil
}

// freeBytes syncs the file system holding dir and returns its free bytes.
func freeBytes(dir string) (int64, error) {
	syscall.Sync()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bfree) * int64(st.Bsize), nil
}
