package consumers

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/archive"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImportInProcess reads the plain tar archive at file with containerd's own Go importer,
// the code k3s and RKE2 link (containerd v2), into a content store under dir, and returns
// the images it names, name to target digest.
//
// It takes the steps of containerd's client import with all platforms, as k3s imports its
// agent/images directory: archive.ImportIndex, then a walk from the index it returns
// through every manifest and index of every platform, each read and decoded from the
// store, without skipping missing content. So an archive whose index lists a manifest it
// lacks fails here as it fails on a node, while configs and layers of platforms that were
// not fetched are never read. The daemon-side image records are the only step left out:
// they are the returned names, which come from io.containerd.image.name as the client
// takes them.
func ImportInProcess(ctx context.Context, dir, file string) (map[string]digest.Digest,
	error) {
	store, err := local.NewStore(dir)
	if err != nil {
		return nil, fmt.Errorf("open content store %s: %w", dir, err)
	}

	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	defer f.Close()

	index, err := archive.ImportIndex(ctx, store, f)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}

	names := map[string]digest.Digest{}
	var handler images.HandlerFunc = func(ctx context.Context, desc ocispec.Descriptor) (
		[]ocispec.Descriptor, error) {
		children, err := images.Children(ctx, store, desc)
		if err != nil || desc.Digest != index.Digest {
			return children, err
		}

		for _, m := range children {
			if name := m.Annotations[images.AnnotationImageName]; name != "" {
				names[name] = m.Digest
			}
		}
		return children, nil
	}

	err = images.WalkNotEmpty(ctx, images.FilterPlatforms(handler, platforms.All), index)
	if errors.Is(err, images.ErrEmptyWalk) {
		return nil, fmt.Errorf("import %s: index.json lists no image", file)
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: walk all platforms: %w", file, err)
	}
	return names, nil
}
