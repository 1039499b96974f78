package cache

import (
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// keyLostImages, in the meta bucket, holds the JSON array of the names of the images whose
// records RebuildIndex lost and no PutImage has recorded again. Until they are recorded their
// blobs look unneeded, so Prune must know of them, also in a later run.
var keyLostImages = []byte("lost_images")

// readLost returns the lost image names, sorted; nil when there are none.
func readLost(tx *bolt.Tx) ([]string, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return nil, nil // a new index; see checkVersion
	}

	raw := meta.Get(keyLostImages)
	if raw == nil {
		return nil, nil
	}

	var names []string
	err := json.Unmarshal(raw, &names)
	if err != nil {
		return nil, fmt.Errorf("decode the lost image names: %w", err)
	}

	return names, nil
}

// writeLost records names, sorted, as the lost images; none deletes the record.
func writeLost(tx *bolt.Tx, names []string) error {
	meta := tx.Bucket(bucketMeta)
	if len(names) == 0 {
		return meta.Delete(keyLostImages)
	}

	names = slices.Sorted(slices.Values(names))
	// Marshalling a slice of strings cannot fail.
	raw, _ := json.Marshal(slices.Compact(names))

	return meta.Put(keyLostImages, raw)
}

// foundLost drops the names of recorded from the lost images.
func foundLost(tx *bolt.Tx, recorded []string) error {
	lost, err := readLost(tx)
	if err != nil || len(lost) == 0 {
		return err
	}

	left := slices.DeleteFunc(lost, func(name string) bool {
		return slices.Contains(recorded, name)
	})

	return writeLost(tx, left)
}

// lostImages returns the names of the images whose records a rebuild of the index lost and
// no fetch has recorded again, sorted.
func (c *Cache) lostImages() ([]string, error) {
	var lost []string
	err := c.withDB(false, func(tx *bolt.Tx) error {
		var err error
		lost, err = readLost(tx)

		return err
	})

	return lost, err
}
