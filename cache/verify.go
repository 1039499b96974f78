package cache

import (
	"context"
	"fmt"
	"os"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Defect is one blob Verify found wanting.
type Defect struct {
	Digest digest.Digest `json:"digest"`
	// Expected is the size an image or the index records for the blob; -1 when none does.
	Expected int64 `json:"expected"`
	// Actual is the size of the file in blobs/; -1 when there is none.
	Actual int64 `json:"actual"`
	// Problem says what is wrong, e.g. "absent" or "content hashes to sha256:…".
	Problem string `json:"problem"`
	// Images names, sorted, the images that need the blob and so cannot be assembled now.
	Images []string `json:"images,omitempty"`
}

// VerifyReport is what Verify found and, when repairing, removed. Lists are sorted by digest
// or name.
type VerifyReport struct {
	// Blobs and Bytes count the blob files hashed.
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
	// Missing: blobs an image needs, or the index records, with no file in blobs/.
	Missing []Defect `json:"missing,omitempty"`
	// Corrupt: files in blobs/ whose size or digest is wrong.
	Corrupt []Defect `json:"corrupt,omitempty"`
	// Orphaned: intact blobs no image needs; Prune removes them.
	Orphaned []BlobInfo `json:"orphaned,omitempty"`
	// StalePartials: files under partial/ no fetch will continue; Prune removes them.
	StalePartials []string `json:"stale_partials,omitempty"`
	// Repaired: blobs whose corrupt file or dangling index entry repair removed, so the next
	// fetch downloads them again.
	Repaired []digest.Digest `json:"repaired,omitempty"`
}

// OK reports whether every image can be assembled from intact blobs.
func (r VerifyReport) OK() bool {
	return len(r.Missing) == 0 && len(r.Corrupt) == 0
}

// Verify re-hashes every blob in blobs/ and reports missing, corrupt and orphaned blobs and
// stale partial downloads, naming the images each defect affects. With repair it removes the
// corrupt files and the index entries of absent or corrupt blobs (repair needs a writable
// cache, else ErrReadOnly); orphans and partials are left to Prune. Verify reads every byte
// of the cache, and stops with ctx's error when ctx is done.
func (c *Cache) Verify(ctx context.Context, repair bool) (VerifyReport, error) {
	var report VerifyReport
	if repair {
		err := c.checkWritable("repair cache")
		if err != nil {
			return report, err
		}
	}

	images, err := c.Images()
	if err != nil {
		return report, err
	}

	indexed, err := c.indexedBlobs()
	if err != nil {
		return report, fmt.Errorf("verify cache %s: %w", c.dir, err)
	}

	refs := newBlobRefs(images)
	present, err := c.checkBlobs(ctx, refs, indexed, &report)
	if err != nil {
		return report, err
	}

	report.Missing = findMissing(refs, indexed, present)

	stale, err := c.stalePartials(refs)
	if err != nil {
		return report, err
	}
	for _, p := range stale {
		report.StalePartials = append(report.StalePartials, p.name)
	}

	if !repair {
		return report, nil
	}

	return report, c.repair(&report)
}

// checkBlobs hashes every file in blobs/ into report and returns the digests of the files.
func (c *Cache) checkBlobs(ctx context.Context, refs blobRefs, indexed []BlobInfo,
	report *VerifyReport) (map[digest.Digest]bool, error) {
	files, err := c.listBlobs()
	if err != nil {
		return nil, err
	}

	indexedSize := map[digest.Digest]int64{}
	for _, b := range indexed {
		indexedSize[b.Digest] = b.Size
	}

	present := map[digest.Digest]bool{}
	for _, file := range files {
		present[file.Digest] = true
		actual, size, err := hashFile(ctx, c.blobPath(file.Digest), file.Digest.Algorithm())
		if err != nil {
			return nil, fmt.Errorf("verify blob %s: %w", file.Digest, err)
		}

		report.Blobs++
		report.Bytes += size
		names := refs.names[file.Digest]
		switch {
		case actual == file.Digest && len(names) == 0:
			report.Orphaned = append(report.Orphaned, BlobInfo{Digest: file.Digest, Size: size})
		case actual != file.Digest:
			expected := expectedSize(file.Digest, refs, indexedSize)
			defect := Defect{Digest: file.Digest, Expected: expected, Actual: size,
				Problem: "content hashes to " + actual.String(), Images: names}
			if expected >= 0 && size != expected {
				defect.Problem = fmt.Sprintf("size %d, expected %d", size, expected)
			}
			c.log.Warn("corrupt blob", "digest", file.Digest, "problem", defect.Problem)
			report.Corrupt = append(report.Corrupt, defect)
		}
	}

	return present, nil
}

// expectedSize is the size an image records for d, else the index's, else -1.
func expectedSize(d digest.Digest, refs blobRefs, indexed map[digest.Digest]int64) int64 {
	if size, ok := refs.sizes[d]; ok {
		return size
	}

	if size, ok := indexed[d]; ok {
		return size
	}

	return -1
}

// findMissing lists the blobs images need or the index records that have no file, sorted by
// digest.
func findMissing(refs blobRefs, indexed []BlobInfo, present map[digest.Digest]bool) []Defect {
	expected := map[digest.Digest]int64{}
	for _, b := range indexed {
		expected[b.Digest] = b.Size
	}
	for d, size := range refs.sizes {
		expected[d] = size
	}

	var out []Defect
	for d, size := range expected {
		if present[d] {
			continue
		}
		out = append(out, Defect{Digest: d, Expected: size, Actual: -1, Problem: "absent",
			Images: refs.names[d]})
	}
	sortDefects(out)

	return out
}

// repair removes the index entries of missing blobs and the files and entries of corrupt
// ones. Entries go first: a crash in between leaves a file the next Open re-indexes and the
// next Verify flags again, never an entry without its file.
func (c *Cache) repair(report *VerifyReport) error {
	var drop []digest.Digest
	for _, d := range report.Missing {
		drop = append(drop, d.Digest)
	}
	for _, d := range report.Corrupt {
		drop = append(drop, d.Digest)
	}
	if len(drop) == 0 {
		return nil
	}

	err := c.unindexBlobs(drop)
	if err != nil {
		return fmt.Errorf("repair cache %s: %w", c.dir, err)
	}

	for _, d := range report.Corrupt {
		err := os.Remove(c.blobPath(d.Digest))
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("repair blob %s: %w", d.Digest, err)
		}
		c.log.Info("removed corrupt blob", "digest", d.Digest, "images", d.Images)
	}

	report.Repaired = sortedDigests(drop)

	return nil
}

// unindexBlobs deletes the index entries of blobs in one transaction.
func (c *Cache) unindexBlobs(digests []digest.Digest) error {
	return c.withDB(true, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		for _, d := range digests {
			err := b.Delete([]byte(d))
			if err != nil {
				return fmt.Errorf("unindex blob %s: %w", d, err)
			}
		}

		return nil
	})
}
