package assemble

import (
	"context"
	"fmt"
	"io"
	"log/slog"
)

// Write checks that every requested image is complete in src before writing a byte
// (failing with an *IncompleteError that names each unknown or incomplete image and what
// it lacks), then streams one archive to w. The same images and content give the same
// bytes, whatever order the images were listed or fetched in.
//
// A blob that does not hash to its digest is found only while it is copied, after part of
// the archive reached w: Write then fails with cache.ErrCorrupt and leaves out the tar
// trailer, and the caller must discard what w received. WriteFile does that itself.
// Write does not close w.
func Write(ctx context.Context, src Source, w io.Writer, opts Options) (Result, error) {
	c, err := prepare(ctx, src, opts)
	if err != nil {
		return Result{}, err
	}

	if size := c.manifestSize(); size > maxManifestJSON {
		return Result{}, fmt.Errorf("write archive: its manifest.json would be %d bytes, "+
			"over podman's limit of %d; write fewer images per archive", size, maxManifestJSON)
	}

	return writeContent(ctx, src, w, c, opts.logger())
}

// prepare selects and checks the requested images and builds the archive content for all
// of them, reading only manifests and configs.
func prepare(ctx context.Context, src Source, opts Options) (content, error) {
	images, err := selectImages(src, opts.Images)
	if err != nil {
		return content{}, err
	}

	plans := make([]imagePlan, 0, len(images))
	for _, img := range images {
		err = ctx.Err()
		if err != nil {
			return content{}, err
		}

		p, err := planImage(src, img)
		if err != nil {
			return content{}, err
		}

		plans = append(plans, p)
	}

	return newContent(plans)
}

// writeContent streams c to w as one archive.
func writeContent(ctx context.Context, src Source, w io.Writer, c content, log *slog.Logger,
) (Result, error) {
	n, err := newTarStream(w, log).writeContent(ctx, src, c)
	if err != nil {
		return Result{}, err
	}

	res := Result{Images: len(c.images), Blobs: len(c.blobs), Bytes: n}
	log.Info("wrote archive", "images", res.Images, "blobs", res.Blobs, "bytes", res.Bytes)
	return res, nil
}
