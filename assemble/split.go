package assemble

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Tar framing, for computing archive sizes before writing.
const (
	tarBlock = 512
	// maxUSTARSize is the largest entry a ustar header holds (11 octal digits); Go's
	// writer puts a PAX header (one header block, one record block) before larger ones.
	maxUSTARSize = 1<<33 - 1
)

// tarEntrySize is the bytes one entry with size bytes of content takes in the stream.
func tarEntrySize(size int64) int64 {
	n := tarBlock + (size+tarBlock-1)/tarBlock*tarBlock
	if size > maxUSTARSize {
		n += 2 * tarBlock
	}

	return n
}

// tarSize is the exact size of the tar stream writeContent writes for c: metadata files,
// blobs/ and one directory per digest algorithm, the blobs with their aligned headers
// (blobHeader), and the two-block trailer.
func (c content) tarSize() (int64, error) {
	var n int64
	for _, f := range c.files {
		n += tarEntrySize(int64(len(f.data)))
	}

	n += tarEntrySize(0)
	algorithm := ""
	for _, b := range c.blobs {
		if a := b.Digest.Algorithm().String(); a != algorithm {
			algorithm = a
			n += tarEntrySize(0)
		}

		blocks, err := blobHeader(n, blobPath(b.Digest), b.Size)
		if err != nil {
			return 0, err
		}

		n += int64(len(blocks)) + (b.Size+tarBlock-1)/tarBlock*tarBlock
	}

	return n + 2*tarBlock, nil
}

// splitContent groups images (sorted by name) into as few archives as fit, in name order:
// each archive's tar stream is at most maxSize bytes (0: no limit) and its manifest.json at
// most maxManifestJSON. An image never spans two archives, so each is complete on its own;
// a blob two archives need is in both. An image that alone exceeds a limit is an error.
func splitContent(images []imagePlan, maxSize int64) ([]content, error) {
	if len(images) == 0 {
		return nil, errors.New("write archive: no image to write")
	}

	var parts []content
	for start := 0; start < len(images); {
		// Sizes grow as images are added, but for the padding that aligns blob bodies (up
		// to 4.5 KiB a blob, depending on where each falls), so bisection finds the
		// longest run that fits or, rarely, one a little shorter; either way every run it
		// returns was checked to fit.
		var err error
		fitting := sort.Search(len(images)-start, func(k int) bool {
			c, buildErr := newContent(images[start : start+k+1])
			if buildErr != nil {
				err = buildErr
				return true
			}

			return checkFits(c, maxSize) != nil
		})
		if err != nil {
			return nil, err
		}

		if fitting == 0 {
			return nil, tooBigError(images[start], maxSize)
		}

		c, err := newContent(images[start : start+fitting])
		if err != nil {
			return nil, err
		}

		parts = append(parts, c)
		start += fitting
	}

	return parts, nil
}

// checkFits says why c does not fit one archive, or returns nil.
func checkFits(c content, maxSize int64) error {
	if size := c.manifestSize(); size > maxManifestJSON {
		return fmt.Errorf("its manifest.json would be %d bytes, over podman's limit of %d",
			size, maxManifestJSON)
	}

	if maxSize <= 0 {
		return nil
	}

	size, err := c.tarSize()
	if err != nil {
		return err
	}

	if size > maxSize {
		return fmt.Errorf("it would be %d bytes, over the maximum archive size of %d",
			size, maxSize)
	}

	return nil
}

// tooBigError explains why image p cannot be written even alone.
func tooBigError(p imagePlan, maxSize int64) error {
	c, err := newContent([]imagePlan{p})
	if err != nil {
		return err
	}

	return fmt.Errorf("write image %s: even alone in an archive, %w; an image cannot be "+
		"split across archives", p.image.Name, checkFits(c, maxSize))
}

// partPaths names n archives after path: path itself for one, else partPath 1 to n.
func partPaths(path string, comp compression, n int) []string {
	if n == 1 {
		return []string{path}
	}

	paths := make([]string, n)
	for i := range paths {
		paths[i] = partPath(path, comp, i+1)
	}

	return paths
}

// partPath is path with "-i" before its compression suffix: "images.tar.zst" with 2 is
// "images-2.tar.zst".
func partPath(path string, comp compression, i int) string {
	return strings.TrimSuffix(path, comp.suffix) + "-" + strconv.Itoa(i) + comp.suffix
}
