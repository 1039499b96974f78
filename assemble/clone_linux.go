package assemble

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// cloneRange makes the n bytes of src from its start the bytes of dst at off, sharing
// src's extents (FICLONERANGE), and reports whether the file system did it. It does only
// where both files are on one file system that shares extents (XFS with reflink, btrfs) and
// off is a multiple of its block size; elsewhere the ioctl fails and the caller copies.
func cloneRange(dst *os.File, off int64, src *os.File, n int64) bool {
	err := unix.IoctlFileCloneRange(int(dst.Fd()), &unix.FileCloneRange{
		Src_fd:      int64(src.Fd()),
		Src_length:  uint64(n),
		Dest_offset: uint64(off),
	})
	return err == nil
}

// unchangedSince reports whether after describes the same file as before with the same
// size, modification time and status-change time: a write, truncation or replacement in
// between changes at least one.
func unchangedSince(before, after os.FileInfo) bool {
	b, ok1 := before.Sys().(*syscall.Stat_t)
	a, ok2 := after.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && os.SameFile(before, after) && before.Size() == after.Size() &&
		before.ModTime().Equal(after.ModTime()) && a.Ctim == b.Ctim
}
