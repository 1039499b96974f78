package cache

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// PruneReport is what Prune removed, or with DryRun would remove. Lists are sorted.
type PruneReport struct {
	DryRun bool `json:"dry_run"`
	// Images are the image records removed.
	Images []string `json:"images,omitempty"`
	// Blobs are the blobs removed: needed by no image kept.
	Blobs []BlobInfo `json:"blobs,omitempty"`
	// Partials are the files removed from partial/.
	Partials []string `json:"partials,omitempty"`
	// BytesFreed adds up the sizes of the removed blobs and partial files.
	BytesFreed int64 `json:"bytes_freed"`
}

// Prune keeps the images named in keep and removes every other image record, every blob no
// kept image needs and every stale partial download. A nil keep keeps all images and only
// removes what none needs; an empty, non-nil keep removes every image. A name in keep that is
// not cached fails with ErrNotFound before anything is removed, so a typo cannot empty the
// cache. A nil keep fails while images whose records a rebuild of the index lost are not
// recorded again (see RebuildIndex); a keep list forgets them. With dryRun nothing is removed
// (and a read-only cache will do).
//
// Prune must not run while this process fetches into the cache: a blob committed for an image
// not yet recorded is unreferenced and would go. Other processes cannot fetch meanwhile: they
// need the writer lock.
func (c *Cache) Prune(ctx context.Context, keep []string, dryRun bool) (PruneReport, error) {
	if !dryRun {
		err := c.checkWritable("prune cache")
		if err != nil {
			return PruneReport{DryRun: dryRun}, err
		}
	}

	// imageMu keeps PutImage from recording an image that needs a blob being removed.
	c.imageMu.Lock()
	defer c.imageMu.Unlock()

	report, err := c.prune(ctx, keep, dryRun)
	if err != nil {
		return report, fmt.Errorf("prune cache %s: %w", c.dir, err)
	}

	return report, nil
}

// prune does the work of Prune. The caller holds imageMu.
func (c *Cache) prune(ctx context.Context, keep []string, dryRun bool) (PruneReport, error) {
	report := PruneReport{DryRun: dryRun}
	lost, err := c.checkLost(keep)
	if err != nil {
		return report, err
	}

	kept, err := c.planPrune(keep, &report)
	if err != nil {
		return report, err
	}

	refs := newBlobRefs(kept)
	drop, err := c.planBlobRemoval(refs, &report)
	if err != nil {
		return report, err
	}

	if dryRun {
		return report, nil
	}

	err = c.removeImages(report.Images)
	if err != nil {
		return report, err
	}

	// Images were named to keep, so the lost ones are not wanted: forget them.
	if len(lost) > 0 {
		err = c.withDB(true, func(tx *bolt.Tx) error { return writeLost(tx, nil) })
		if err != nil {
			return report, err
		}
	}

	return report, c.removeBlobs(ctx, drop, report)
}

// checkLost returns the images whose records a rebuild of the index lost. Their blobs look
// unneeded, so it refuses to prune without a list of the images to keep.
func (c *Cache) checkLost(keep []string) ([]string, error) {
	lost, err := c.lostImages()
	if err != nil {
		return nil, err
	}

	if keep == nil && len(lost) > 0 {
		return nil, fmt.Errorf("the records of %s were lost when index.db was rebuilt, so "+
			"the blobs they need look unneeded; run dls fetch with their lists first to "+
			"record them again, or give dls prune lists of the images to keep",
			strings.Join(lost, ", "))
	}

	return lost, nil
}

// planPrune splits the images into those kept, returned, and those removed, listed in report.
func (c *Cache) planPrune(keep []string, report *PruneReport) ([]Image, error) {
	images, err := c.Images()
	if err != nil {
		return nil, err
	}

	if keep == nil {
		return images, nil
	}

	var unknown []string
	for _, name := range keep {
		found := slices.ContainsFunc(images, func(img Image) bool { return img.Name == name })
		if !found {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("images to keep %s are not cached; check the names against "+
			"dls ls: %w", strings.Join(unknown, ", "), ErrNotFound)
	}

	var kept []Image
	for _, img := range images {
		if slices.Contains(keep, img.Name) {
			kept = append(kept, img)
		} else {
			report.Images = append(report.Images, img.Name)
		}
	}

	return kept, nil
}

// planBlobRemoval lists in report the blobs and partials the kept images do not need and
// returns the index entries to delete: those of the removed blobs and of unneeded blobs the
// index records without a file.
func (c *Cache) planBlobRemoval(refs blobRefs, report *PruneReport) ([]digest.Digest, error) {
	files, err := c.listBlobs()
	if err != nil {
		return nil, err
	}

	indexed, err := c.indexedBlobs()
	if err != nil {
		return nil, err
	}

	var drop []digest.Digest
	for _, b := range files {
		if _, needed := refs.names[b.Digest]; !needed {
			report.Blobs = append(report.Blobs, b)
			report.BytesFreed += b.Size
		}
	}
	for _, b := range indexed {
		if _, needed := refs.names[b.Digest]; !needed {
			drop = append(drop, b.Digest)
		}
	}

	stale, err := c.stalePartials(refs)
	if err != nil {
		return nil, err
	}
	for _, p := range stale {
		report.Partials = append(report.Partials, p.name)
		report.BytesFreed += p.size
	}

	return drop, nil
}

// removeImages deletes image records and rewrites index.json. The caller holds imageMu.
func (c *Cache) removeImages(names []string) error {
	if len(names) == 0 {
		return nil
	}

	err := c.withDB(true, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		for _, name := range names {
			err := b.Delete([]byte(name))
			if err != nil {
				return fmt.Errorf("remove image %s: %w", name, err)
			}
		}

		return nil
	})
	if err != nil {
		return err
	}

	return c.writeIndex()
}

// removeBlobs deletes the index entries in drop, then the blob and partial files of report.
// Images and index entries go before files, so a crash leaves only files no image needs,
// which the next Open re-indexes and the next Prune removes.
func (c *Cache) removeBlobs(ctx context.Context, drop []digest.Digest, report PruneReport) error {
	err := c.unindexBlobs(drop)
	if err != nil {
		return err
	}

	paths := make([]string, 0, len(report.Blobs)+len(report.Partials))
	for _, b := range report.Blobs {
		paths = append(paths, c.blobPath(b.Digest))
	}
	for _, name := range report.Partials {
		paths = append(paths, c.path(partialDir, name))
	}

	for _, path := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}

		// os.Remove's error names the path.
		err := os.Remove(path)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
	}

	return nil
}
