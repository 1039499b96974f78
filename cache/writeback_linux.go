package cache

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to begin writing the given range of f to disk and returns
// without waiting for it (sync_file_range with SYNC_FILE_RANGE_WRITE). It only hints: the
// range is made durable by the fsync at commit, which then has less left to wait for. An
// error is ignored for the same reason: the fsync reports what matters.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
