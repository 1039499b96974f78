//go:build !linux

package assemble

import "os"

// cloneRange reports false: sharing extents is done only on Linux, and the caller copies.
func cloneRange(*os.File, int64, *os.File, int64) bool {
	return false
}

// unchangedSince is never asked where cloneRange cannot clone.
func unchangedSince(before, after os.FileInfo) bool {
	return false
}
