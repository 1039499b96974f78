package cache

import (
	"os"

	"golang.org/x/sys/unix"
)

// statxMask asks for what a stamp holds; the unique mount ID is preferred where the kernel
// has it (6.8), the reusable one otherwise.
const statxMask = unix.STATX_INO | unix.STATX_CTIME | unix.STATX_SIZE | unix.STATX_MNT_ID |
	unix.STATX_MNT_ID_UNIQUE

// stampPath returns the stamp of the file at path.
func stampPath(path string) (fileStamp, bool) {
	var stx unix.Statx_t
	if unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, statxMask, &stx) != nil {
		return fileStamp{}, false
	}
	return stampFrom(&stx)
}

// stampFile returns the stamp of the open file f.
func stampFile(f *os.File) (fileStamp, bool) {
	var stx unix.Statx_t
	if unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, statxMask, &stx) != nil {
		return fileStamp{}, false
	}
	return stampFrom(&stx)
}

// stampFrom makes a stamp of what statx returned, refusing one without a mount ID, without
// a boot ID, or with a ctime that looks kept to the millisecond or coarser (see fileStamp).
func stampFrom(stx *unix.Statx_t) (fileStamp, bool) {
	const need = unix.STATX_INO | unix.STATX_CTIME | unix.STATX_SIZE
	boot := bootID()
	if stx.Mask&need != need || stx.Mask&(unix.STATX_MNT_ID|unix.STATX_MNT_ID_UNIQUE) == 0 ||
		boot == [16]byte{} || stx.Ctime.Nsec%1_000_000 == 0 {
		return fileStamp{}, false
	}

	return fileStamp{
		boot:     boot,
		mount:    stx.Mnt_id,
		dev:      unix.Mkdev(stx.Dev_major, stx.Dev_minor),
		ino:      stx.Ino,
		ctimeSec: stx.Ctime.Sec,
		ctime:    int64(stx.Ctime.Nsec),
		size:     int64(stx.Size),
	}, true
}
