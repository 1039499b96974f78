package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// annotationImageName is containerd's annotation for an image's full reference.
const annotationImageName = "io.containerd.image.name"

// cacheDirTag marks the directory for backup tools (https://bford.info/cachedir/): everything
// in it can be fetched again.
const cacheDirTag = "Signature: 8a477f597d28d172789f06886806bc55\n" +
	"# This file is a cache directory tag created by dls.\n" +
	"# For information about cache directory tags, see https://bford.info/cachedir/\n"

// writeLayoutFiles creates oci-layout and CACHEDIR.TAG when absent.
func (c *Cache) writeLayoutFiles() error {
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return fmt.Errorf("encode %s: %w", layoutFile, err)
	}

	files := []struct {
		name string
		data []byte
	}{
		{layoutFile, layout},
		{tagFile, []byte(cacheDirTag)},
	}
	for _, f := range files {
		_, err := os.Stat(c.path(f.name))
		if err == nil {
			continue
		}

		err = writeFileAtomic(c.path(f.name), f.data)
		if err != nil {
			return err
		}
	}

	return nil
}

// ensureIndex writes index.json from the image records when it is absent: a new cache, or one
// whose index.json was lost.
func (c *Cache) ensureIndex() error {
	_, err := os.Stat(c.path(indexFile))
	if err == nil {
		return nil
	}

	c.imageMu.Lock()
	defer c.imageMu.Unlock()

	return c.writeIndex()
}

// writeIndex rewrites index.json from the image records. The caller holds imageMu.
func (c *Cache) writeIndex() error {
	var images []Image
	err := c.withDB(false, func(tx *bolt.Tx) error {
		var err error
		images, err = readImages(tx)

		return err
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", indexFile, err)
	}

	return writeFileAtomic(c.path(indexFile), encodeIndex(images))
}

// encodeIndex returns index.json for images: one descriptor per image, its Target named as
// containerd and moby name them, in the images' (Name) order so the file is deterministic.
func encodeIndex(images []Image) []byte {
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{},
	}
	for _, img := range images {
		desc := ocispec.Descriptor{
			MediaType: img.Target.MediaType,
			Digest:    img.Target.Digest,
			Size:      img.Target.Size,
			Annotations: map[string]string{
				annotationImageName:       img.Name,
				ocispec.AnnotationRefName: refName(img.Name),
			},
		}
		index.Manifests = append(index.Manifests, desc)
	}

	// Marshalling these types cannot fail: they hold only strings, numbers and maps of strings.
	data, _ := json.MarshalIndent(index, "", "  ")

	return append(data, '\n')
}

// refName is the org.opencontainers.image.ref.name of a normalised reference: its tag, or the
// whole reference when it is pinned by digest or has no tag, as moby's exporter does.
func refName(name string) string {
	if strings.Contains(name, "@") {
		return name
	}

	slash := strings.LastIndex(name, "/")
	colon := strings.LastIndex(name, ":")
	if colon > slash {
		return name[colon+1:]
	}

	return name
}

// writeFileAtomic replaces path with data: a synced temporary file renamed over it, then the
// directory synced, so readers see the old or the new content and never a mix.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}

	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, errors.Join(err, os.Remove(f.Name())))
	}

	err = syncDir(dir)
	if err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}

	return nil
}
