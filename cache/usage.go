package cache

import (
	"context"
	"fmt"
)

// Usage sums up what a cache holds on disk.
type Usage struct {
	Images int `json:"images"`
	// Blobs and Bytes count the files in blobs/.
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
	// SharedBytes is the part of Bytes in blobs two or more images need: what storing the
	// images separately would cost again.
	SharedBytes int64 `json:"shared_bytes"`
	// OrphanedBytes is the part of Bytes in blobs no image needs; Prune frees it.
	OrphanedBytes int64 `json:"orphaned_bytes"`
	// Partials and PartialBytes count the files under partial/.
	Partials     int   `json:"partials"`
	PartialBytes int64 `json:"partial_bytes"`
}

// Usage reports the cache's disk use from file sizes, reading no blob content, so it is
// cheap; Verify is the check of content.
func (c *Cache) Usage(ctx context.Context) (Usage, error) {
	var u Usage
	if err := ctx.Err(); err != nil {
		return u, fmt.Errorf("measure cache %s: %w", c.dir, err)
	}

	images, err := c.Images()
	if err != nil {
		return u, err
	}
	u.Images = len(images)

	blobs, err := c.listBlobs()
	if err != nil {
		return u, err
	}

	refs := newBlobRefs(images)
	for _, b := range blobs {
		u.Blobs++
		u.Bytes += b.Size
		switch n := len(refs.names[b.Digest]); {
		case n == 0:
			u.OrphanedBytes += b.Size
		case n > 1:
			u.SharedBytes += b.Size
		}
	}

	partials, err := c.listPartials()
	if err != nil {
		return u, err
	}
	for _, p := range partials {
		u.Partials++
		u.PartialBytes += p.size
	}

	return u, nil
}
