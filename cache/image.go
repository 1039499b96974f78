package cache

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// PutImage records img, replacing any record of the same name, and rewrites index.json. Its
// Blobs are stored sorted by digest without duplicates whatever order they come in. The
// blobs need not be present yet; Missing tells which are not.
func (c *Cache) PutImage(img Image) error {
	err := c.checkWritable("put image " + img.Name)
	if err != nil {
		return err
	}

	c.imageMu.Lock()
	defer c.imageMu.Unlock()

	return c.putImages([]Image{img})
}

// PutImages records several images as PutImage does, in one transaction and with one
// index.json rewrite: recording a fleet image by image would rewrite index.json, which lists
// every image, once per image.
func (c *Cache) PutImages(images []Image) error {
	err := c.checkWritable(fmt.Sprintf("put %d images", len(images)))
	if err != nil {
		return err
	}
	if len(images) == 0 {
		return nil
	}

	c.imageMu.Lock()
	defer c.imageMu.Unlock()

	return c.putImages(images)
}

// putImages records images in one transaction, then rewrites index.json. The caller holds
// imageMu.
func (c *Cache) putImages(images []Image) error {
	records := make(map[string][]byte, len(images))
	for _, img := range images {
		img, err := normaliseImage(img)
		if err != nil {
			return err
		}

		records[img.Name], err = json.Marshal(img)
		if err != nil {
			return fmt.Errorf("put image %s: %w", img.Name, err)
		}
	}

	err := c.withDB(true, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		names := make([]string, 0, len(records))
		for name, data := range records {
			err := b.Put([]byte(name), data)
			if err != nil {
				return fmt.Errorf("put image %s: %w", name, err)
			}
			names = append(names, name)
		}

		return foundLost(tx, names)
	})
	if err != nil {
		return err
	}

	return c.writeIndex()
}

// normaliseImage checks that img can be recorded and sorts and dedupes a copy of its Blobs.
func normaliseImage(img Image) (Image, error) {
	if img.Name == "" {
		return img, fmt.Errorf("put image: empty name")
	}

	descs := append([]ocispec.Descriptor{img.Target}, img.Manifests...)
	descs = append(descs, img.Children...)
	descs = append(descs, img.Blobs...)
	for _, d := range descs {
		err := d.Digest.Validate()
		if err != nil {
			return img, fmt.Errorf("put image %s: descriptor %q: %w", img.Name, d.Digest, err)
		}
	}

	blobs := slices.Clone(img.Blobs)
	slices.SortStableFunc(blobs, func(a, b ocispec.Descriptor) int {
		return strings.Compare(string(a.Digest), string(b.Digest))
	})
	img.Blobs = slices.CompactFunc(blobs, func(a, b ocispec.Descriptor) bool {
		return a.Digest == b.Digest
	})

	return img, nil
}

// Image returns the record of the image named name; ErrNotFound when there is none.
func (c *Cache) Image(name string) (Image, error) {
	var img Image
	found := false
	err := c.withDB(false, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		if b == nil {
			return nil // a new index; see checkVersion
		}

		data := b.Get([]byte(name))
		if data == nil {
			return nil
		}

		found = true

		return json.Unmarshal(data, &img)
	})
	if err != nil {
		return Image{}, fmt.Errorf("look up image %s: %w", name, err)
	}

	if !found {
		return Image{}, fmt.Errorf("look up image %s: %w", name, ErrNotFound)
	}

	return img, nil
}

// Images returns every recorded image, sorted by Name.
func (c *Cache) Images() ([]Image, error) {
	var out []Image
	err := c.withDB(false, func(tx *bolt.Tx) error {
		var err error
		out, err = readImages(tx)

		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list images in %s: %w", c.dir, err)
	}

	return out, nil
}

// readImages decodes the images bucket; bbolt's key order is the Name order.
func readImages(tx *bolt.Tx) ([]Image, error) {
	b := tx.Bucket(bucketImages)
	if b == nil {
		return nil, nil // a new index; see checkVersion
	}

	var out []Image
	err := b.ForEach(func(k, v []byte) error {
		var img Image
		err := json.Unmarshal(v, &img)
		if err != nil {
			return fmt.Errorf("decode image %s: %w", k, err)
		}
		out = append(out, img)

		return nil
	})

	return out, err
}

// Missing returns the blobs of img that are not in blobs/, in img.Blobs order. A blob whose
// file has a size other than its descriptor's counts as missing, so fetching it again
// replaces a truncated file.
func (c *Cache) Missing(img Image) []ocispec.Descriptor {
	var out []ocispec.Descriptor
	for _, desc := range img.Blobs {
		size, ok := c.HasBlob(desc.Digest)
		if ok && size == desc.Size {
			continue
		}

		if ok {
			c.log.Warn("blob has the wrong size; it will be fetched again",
				"digest", desc.Digest, "size", size, "expected", desc.Size)
		}
		out = append(out, desc)
	}

	return out
}
