//go:build linux

package cache

import (
	"os"
	"syscall"
)

// stampOf returns the stamp of the file fi describes.
func stampOf(fi os.FileInfo) (fileStamp, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStamp{}, false
	}

	return fileStamp{dev: uint64(st.Dev), ino: st.Ino, ctimeSec: st.Ctim.Sec,
		ctime: st.Ctim.Nsec, size: st.Size}, true
}
