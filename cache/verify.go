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
	// Problem says what is wrong: "absent, though the index records it as fetched",
	// "size 150, expected 200" or "content hashes to sha256:…".
	Problem string `json:"problem"`
	// Images names, sorted, the images that need the blob and so cannot be assembled now.
	Images []string `json:"images,omitempty"`
}

// IncompleteImage is an image some of whose blobs were never fetched: what a fetch killed or
// interrupted after recording the image leaves. It is no defect: the next fetch of the image
// downloads the rest, continuing partial downloads.
type IncompleteImage struct {
	Name string `json:"name"`
	// Blobs counts the blobs the image needs.
	Blobs int `json:"blobs"`
	// NotFetched are the blobs the image needs that are neither in blobs/ nor recorded in
	// the index, sorted by digest, with the sizes the image gives.
	NotFetched []BlobInfo `json:"not_fetched"`
	// Partial counts the NotFetched blobs with a partial download of at least one byte under
	// partial/, which the next fetch continues.
	Partial int `json:"partial"`
}

// VerifyReport is what Verify found and, when repairing, removed. Lists are sorted by digest
// or name.
type VerifyReport struct {
	// Blobs and Bytes count the blob files hashed.
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
	// Missing: blobs the index records as fetched that have no file in blobs/: lost after
	// they were committed, which no interrupted command causes.
	Missing []Defect `json:"missing,omitempty"`
	// Corrupt: files in blobs/ whose size or digest is wrong.
	Corrupt []Defect `json:"corrupt,omitempty"`
	// Incomplete: images needing blobs that were never fetched. Not defects: the blobs have
	// no file and no index entry, and the next fetch of the images finishes them.
	Incomplete []IncompleteImage `json:"incomplete,omitempty"`
	// LostImages: images whose records were lost when a damaged index was rebuilt
	// (RebuildIndex) and that no fetch has recorded again. The blobs they need count as
	// Orphaned meanwhile, but Prune keeps them unless given the images to keep.
	LostImages []string `json:"lost_images,omitempty"`
	// Orphaned: intact blobs no image needs; Prune removes them.
	Orphaned []BlobInfo `json:"orphaned,omitempty"`
	// StalePartials: files under partial/ no fetch will continue (downloads of blobs no image
	// needs or already in blobs/, PutBlob leftovers); Prune removes them. Partial downloads
	// of the blobs of Incomplete images are in progress, not stale.
	StalePartials []string `json:"stale_partials,omitempty"`
	// Repaired: blobs whose corrupt file or dangling index entry repair removed, so the next
	// fetch downloads them again.
	Repaired []digest.Digest `json:"repaired,omitempty"`
}

// OK reports whether the cache has no defect: every blob the index records is present and
// intact. Incomplete images are no defect; Complete also requires them to be finished.
func (r VerifyReport) OK() bool {
	return len(r.Missing) == 0 && len(r.Corrupt) == 0
}

// Complete reports whether every image can be assembled from intact blobs: OK, no image
// waits for blobs a fetch has not downloaded yet, and no image record was lost.
func (r VerifyReport) Complete() bool {
	return r.OK() && len(r.Incomplete) == 0 && len(r.LostImages) == 0
}

// Verify re-hashes every blob in blobs/ and reports corrupt blobs, blobs the index records
// that are missing, images whose blobs were not all fetched yet, orphaned blobs and stale
// partial downloads, naming the images each defect affects. It tells a blob lost after it was
// fetched (a defect) from one never fetched (a fetch to finish) by the index, which records
// each blob once it is committed. With repair it removes the corrupt files and the index
// entries of absent or corrupt blobs (repair needs a writable cache, else ErrReadOnly);
// orphans and partials are left to Prune. Verify reads every byte of the cache, and stops
// with ctx's error when ctx is done.
func (c *Cache) Verify(ctx context.Context, repair bool) (VerifyReport, error) {
	if repair {
		err := c.checkWritable("repair cache")
		if err != nil {
			return VerifyReport{}, err
		}
	}

	report, err := c.verify(ctx)
	if err == nil && repair {
		err = c.repair(&report)
	}
	if err != nil {
		return report, fmt.Errorf("verify cache %s: %w", c.dir, err)
	}

	return report, nil
}

// verify fills the report of Verify, repairing nothing.
func (c *Cache) verify(ctx context.Context) (VerifyReport, error) {
	var report VerifyReport
	images, err := c.Images()
	if err != nil {
		return report, err
	}

	indexed, err := c.indexedBlobs()
	if err != nil {
		return report, err
	}

	refs := newBlobRefs(images)
	present, err := c.checkBlobs(ctx, refs, indexed, &report)
	if err != nil {
		return report, err
	}

	partials, err := c.listPartials()
	if err != nil {
		return report, err
	}

	report.LostImages, err = c.lostImages()
	if err != nil {
		return report, err
	}

	var notFetched map[digest.Digest]bool
	report.Missing, notFetched = classifyAbsent(refs, indexed, present)
	report.Incomplete = incompleteImages(images, notFetched, partials)
	for _, p := range c.staleOf(partials, refs) {
		report.StalePartials = append(report.StalePartials, p.name)
	}

	return report, nil
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

// problemAbsent is the Problem of a Missing defect.
const problemAbsent = "absent, though the index records it as fetched"

// classifyAbsent sorts the blobs that have no file in blobs/. Those the index records were
// lost after they were committed: they are returned as defects, sorted by digest. Those only
// images need were never fetched: they are returned as a set.
func classifyAbsent(refs blobRefs, indexed []BlobInfo,
	present map[digest.Digest]bool) ([]Defect, map[digest.Digest]bool) {
	var missing []Defect
	recorded := map[digest.Digest]bool{}
	for _, b := range indexed {
		recorded[b.Digest] = true
		if present[b.Digest] {
			continue
		}

		expected := b.Size
		if size, ok := refs.sizes[b.Digest]; ok {
			expected = size
		}
		missing = append(missing, Defect{Digest: b.Digest, Expected: expected, Actual: -1,
			Problem: problemAbsent, Images: refs.names[b.Digest]})
	}
	sortDefects(missing)

	notFetched := map[digest.Digest]bool{}
	for d := range refs.sizes {
		if !present[d] && !recorded[d] {
			notFetched[d] = true
		}
	}

	return missing, notFetched
}

// incompleteImages lists, in the images' (Name) order, the images needing blobs of
// notFetched, counting those with a partial download in partials.
func incompleteImages(images []Image, notFetched map[digest.Digest]bool,
	partials []partialFile) []IncompleteImage {
	resumable := map[digest.Digest]bool{}
	for _, p := range partials {
		if p.digest != "" && !p.put && p.size > 0 {
			resumable[p.digest] = true
		}
	}

	var out []IncompleteImage
	for _, img := range images {
		inc := IncompleteImage{Name: img.Name, Blobs: len(img.Blobs)}
		for _, desc := range img.Blobs {
			if !notFetched[desc.Digest] {
				continue
			}

			inc.NotFetched = append(inc.NotFetched, BlobInfo{Digest: desc.Digest,
				Size: desc.Size})
			if resumable[desc.Digest] {
				inc.Partial++
			}
		}
		if len(inc.NotFetched) > 0 {
			out = append(out, inc)
		}
	}

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
		return err
	}

	for _, d := range report.Corrupt {
		err := os.Remove(c.blobPath(d.Digest))
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove corrupt blob %s: %w", d.Digest, err)
		}
		c.log.Info("removed corrupt blob", "digest", d.Digest, "images", d.Images)
	}

	report.Repaired = sortedDigests(drop)

	return nil
}

// unindexBlobs deletes the index entries of blobs in one transaction.
func (c *Cache) unindexBlobs(digests []digest.Digest) error {
	defer c.noteStamps(nil, digests)

	return c.withDB(true, func(tx *bolt.Tx) error {
		b, verified := tx.Bucket(bucketBlobs), tx.Bucket(bucketVerified)
		for _, d := range digests {
			err := b.Delete([]byte(d))
			if err == nil && verified != nil {
				err = verified.Delete([]byte(d))
			}
			if err != nil {
				return fmt.Errorf("unindex blob %s: %w", d, err)
			}
		}

		return nil
	})
}
