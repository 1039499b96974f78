package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MergeConflict is an image name both caches hold with different records. Ours is kept.
type MergeConflict struct {
	Name   string        `json:"name"`
	Ours   digest.Digest `json:"ours"`   // target digest kept
	Theirs digest.Digest `json:"theirs"` // target digest of the source's record, not taken
	// Problem says how the records differ.
	Problem string `json:"problem"`
}

// MergeReport is what Merge took from the source cache. Lists are sorted.
type MergeReport struct {
	// Images are the image records added.
	Images []string `json:"images,omitempty"`
	// Widened are images both caches hold at one target, fetched for different platforms:
	// this cache's record now has the platforms of both.
	Widened []string `json:"widened,omitempty"`
	// Conflicts are the source's images left out because this cache names them differently.
	Conflicts []MergeConflict `json:"conflicts,omitempty"`
	// Copied are the blobs copied, verified, and Bytes their total size.
	Copied []BlobInfo `json:"copied,omitempty"`
	Bytes  int64      `json:"bytes"`
	// Present counts the source's blobs this cache already held.
	Present int `json:"present"`
	// Corrupt are the source's blobs whose bytes did not match their digest; not copied.
	Corrupt []digest.Digest `json:"corrupt,omitempty"`
}

// Merge takes into this cache every blob and image record of the cache at srcDir, which it
// opens read-only. Every copied blob is hashed while it is copied, so nothing unverified
// lands in blobs/. All blobs are taken, referenced or not, because a shard of a split fetch
// may hold blobs of images another shard records. Merging is idempotent, and merging several
// caches gives the same cache in any order, except for conflicts: an image name recorded
// differently in both keeps this cache's record and is reported. Blobs of the source that
// fail verification are skipped; Merge finishes the rest, then returns its report and an
// error wrapping ErrCorrupt naming them.
func (c *Cache) Merge(ctx context.Context, srcDir string) (MergeReport, error) {
	var report MergeReport
	err := c.checkWritable("merge into cache")
	if err != nil {
		return report, err
	}

	src, err := Open(srcDir, Options{ReadOnly: true, Logger: c.log})
	if errors.Is(err, ErrNotFound) {
		return report, fmt.Errorf("merge cache %s: no dls cache there (no %s); check the "+
			"path: %w", srcDir, dbFile, ErrNotFound)
	}
	if err != nil {
		return report, fmt.Errorf("merge cache %s: %w", srcDir, err)
	}
	defer src.Close()

	// Blobs before images: a crash in between leaves unreferenced blobs, never a new image
	// whose blobs were not copied yet.
	err = c.mergeBlobs(ctx, src, &report)
	if err != nil {
		return report, fmt.Errorf("merge cache %s: %w", srcDir, err)
	}

	err = c.mergeImages(src, &report)
	if err != nil {
		return report, fmt.Errorf("merge cache %s: %w", srcDir, err)
	}

	if len(report.Corrupt) > 0 {
		return report, fmt.Errorf("merge cache %s: skipped %d corrupt blobs of it (%s); "+
			"run dls verify on it: %w", srcDir, len(report.Corrupt),
			joinDigests(report.Corrupt), ErrCorrupt)
	}

	return report, nil
}

// mergeBlobs copies the blobs of src this cache lacks.
func (c *Cache) mergeBlobs(ctx context.Context, src *Cache, report *MergeReport) error {
	blobs, err := src.listBlobs()
	if err != nil {
		return err
	}

	for _, b := range blobs {
		err := ctx.Err()
		if err != nil {
			return err
		}

		if size, ok := c.HasBlob(b.Digest); ok && size == b.Size {
			report.Present++
			continue
		}

		err = c.copyBlob(ctx, src, b)
		if errors.Is(err, ErrCorrupt) {
			c.log.Warn("skipping corrupt blob of the merged cache", "digest", b.Digest, "err", err)
			report.Corrupt = append(report.Corrupt, b.Digest)
			continue
		}
		if err != nil {
			return err
		}

		report.Copied = append(report.Copied, b)
		report.Bytes += b.Size
	}

	return nil
}

// copyBlob copies one blob of src through an Ingest, which verifies it on Commit.
func (c *Cache) copyBlob(ctx context.Context, src *Cache, b BlobInfo) error {
	f, err := src.OpenBlob(b.Digest)
	if err != nil {
		return err
	}
	defer f.Close()

	w, err := c.Ingest(ocispec.Descriptor{Digest: b.Digest, Size: b.Size})
	if err != nil {
		return err
	}
	defer w.Close()

	// Start from zero: a partial left by an earlier fetch is not worth the doubt it adds
	// when the copy fails verification.
	err = w.Reset()
	if err != nil {
		return err
	}

	_, err = io.Copy(w, ctxReader{ctx: ctx, r: f})
	if err != nil {
		return fmt.Errorf("copy blob %s: %w", b.Digest, err)
	}

	return w.Commit()
}

// mergeImages records the images of src this cache lacks and reports conflicting ones.
func (c *Cache) mergeImages(src *Cache, report *MergeReport) error {
	theirs, err := src.Images()
	if err != nil {
		return err
	}

	c.imageMu.Lock()
	defer c.imageMu.Unlock()

	var add []Image
	for _, img := range theirs {
		ours, err := c.Image(img.Name)
		if errors.Is(err, ErrNotFound) {
			add = append(add, img)
			report.Images = append(report.Images, img.Name)
			continue
		}
		if err != nil {
			return err
		}

		conflict, ok := compareImages(ours, img)
		if ok {
			continue
		}

		if wide, ok := widenImage(ours, img); ok {
			if len(wide.Manifests) != len(ours.Manifests) {
				add = append(add, wide)
				report.Widened = append(report.Widened, img.Name)
			}
			continue
		}

		c.log.Warn("keeping this cache's record of a conflicting image",
			"image", img.Name, "problem", conflict.Problem)
		report.Conflicts = append(report.Conflicts, conflict)
	}

	if len(add) == 0 {
		return nil
	}

	// A source may hold an image its fetch has not finished (it was copied mid-fetch, or
	// the fetch failed): the record comes along, and so does the warning.
	for _, img := range add {
		if missing := c.Missing(img); len(missing) > 0 {
			c.log.Warn("merged an incomplete image; fetch it to complete it before assembling",
				"image", img.Name, "missing_blobs", len(missing), "blobs", len(img.Blobs))
		}
	}

	return c.putImages(add)
}

// compareImages reports whether two records of one name agree, and the conflict if not.
func compareImages(ours, theirs Image) (MergeConflict, bool) {
	conflict := MergeConflict{Name: ours.Name, Ours: ours.Target.Digest,
		Theirs: theirs.Target.Digest}
	if ours.Target.Digest != theirs.Target.Digest {
		conflict.Problem = "different targets"
		return conflict, false
	}

	// Both records were normalised by PutImage, and encoding/json sorts map keys, so equal
	// records encode to equal bytes.
	a, errA := json.Marshal(ours)
	b, errB := json.Marshal(theirs)
	if errA != nil || errB != nil || !bytes.Equal(a, b) {
		conflict.Problem = "same target, different platform manifests or blobs"
		return conflict, false
	}

	return conflict, true
}

// widenImage joins two records of one name at one index, fetched for different platforms
// (shards of one list fetched per platform, or the same list fetched twice), into one with
// the platform manifests and blobs of both, as fetching the second platform into the first
// cache would have. The manifests then follow the index's order, so the result does not
// depend on which cache is merged into which; when theirs adds no platform, ours is
// returned unchanged. Records of different targets, or of a single manifest, are not joined.
func widenImage(ours, theirs Image) (Image, bool) {
	if ours.Target.Digest != theirs.Target.Digest || len(ours.Children) == 0 ||
		!slices.EqualFunc(ours.Children, theirs.Children, sameDigest) {
		return Image{}, false
	}

	adds := slices.ContainsFunc(theirs.Manifests, func(d ocispec.Descriptor) bool {
		return !slices.ContainsFunc(ours.Manifests, func(o ocispec.Descriptor) bool {
			return sameDigest(d, o)
		})
	})
	if !adds {
		return ours, true // theirs is a part of ours: nothing to change
	}

	wide := ours
	wide.Manifests = nil
	for _, child := range ours.Children {
		if slices.ContainsFunc(ours.Manifests, func(d ocispec.Descriptor) bool {
			return sameDigest(d, child)
		}) || slices.ContainsFunc(theirs.Manifests, func(d ocispec.Descriptor) bool {
			return sameDigest(d, child)
		}) {
			wide.Manifests = append(wide.Manifests, child)
		}
	}
	wide.Blobs = append(slices.Clone(ours.Blobs), theirs.Blobs...)

	return wide, true
}

func sameDigest(a, b ocispec.Descriptor) bool {
	return a.Digest == b.Digest
}

// joinDigests lists digests for a message.
func joinDigests(digests []digest.Digest) string {
	s := make([]string, len(digests))
	for i, d := range digests {
		s[i] = d.String()
	}

	return strings.Join(s, ", ")
}
