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
// bytes, whatever order the images were listed or fetched in. Images that need more than
// one archive (opts.MaxSize, or a manifest.json over 1 MiB) are an error: use WriteFile.
//
// A blob that does not hash to its digest is found only while it is copied, after part of
// the archive reached w: Write then fails with cache.ErrCorrupt and leaves that blob's
// entry short, so any tar reader fails on what w received. WriteFile removes its file.
// Write does not close w.
func Write(ctx context.Context, src Source, w io.Writer, opts Options) (Result, error) {
	images, err := prepare(ctx, src, opts)
	if err != nil {
		return Result{}, err
	}

	parts, err := splitContent(images, opts.MaxSize)
	if err != nil {
		return Result{}, err
	}

	if len(parts) > 1 {
		return Result{}, fmt.Errorf("write archive: the images need %d archives to keep "+
			"each under the size limits; write them to a file, which splits them", len(parts))
	}

	return writeContent(ctx, src, w, parts[0], opts)
}

// maxDockerLayers is the most layers classic docker load stacks: its layer store refuses a
// deeper chain with "max depth exceeded" (graphdrivers allow 127 and a container adds 2).
// containerd and podman have no such limit, so a deeper image is written, with a warning.
const maxDockerLayers = 125

// prepare selects and checks the requested images and plans each, sorted by name, reading
// only manifests and configs. Images the archive would name alike are merged or refused
// (mergeSameNames).
func prepare(ctx context.Context, src Source, opts Options) ([]imagePlan, error) {
	images, err := selectImages(src, opts.Images, opts.Platforms)
	if err != nil {
		return nil, err
	}

	plans := make([]imagePlan, 0, len(images))
	for _, img := range images {
		err = ctx.Err()
		if err != nil {
			return nil, err
		}

		p, err := planImage(src, img)
		if err != nil {
			return nil, err
		}

		plans = append(plans, p)
	}

	plans, err = mergeSameNames(plans, opts.logger())
	if err != nil {
		return nil, err
	}

	warnDeepImages(plans, opts.logger())
	return plans, nil
}

// warnDeepImages warns about each image whose manifest.json platform has more layers than
// docker load accepts.
func warnDeepImages(plans []imagePlan, log *slog.Logger) {
	for _, p := range plans {
		if len(p.layers) > maxDockerLayers {
			log.Warn("image has more layers than docker load with classic storage accepts "+
				"(it fails with \"max depth exceeded\"); containerd, k3s and podman load it",
				"image", p.image.Name, "layers", len(p.layers), "docker_max", maxDockerLayers)
		}
	}
}

// writeContent streams c to w as one archive.
func writeContent(ctx context.Context, src Source, w io.Writer, c content, opts Options,
) (Result, error) {
	s := newTarStream(w, opts.logger())
	s.rehash = opts.Rehash
	n, err := s.writeContent(ctx, src, c)
	if err != nil {
		return Result{}, err
	}

	res := Result{Images: len(c.images), Blobs: len(c.blobs), Bytes: n, Hashed: s.hashed,
		Cloned: s.cloned}
	opts.logger().Info("wrote archive", "images", res.Images, "blobs", res.Blobs,
		"bytes", res.Bytes, "hashed", res.Hashed, "cloned", res.Cloned)
	return res, nil
}
