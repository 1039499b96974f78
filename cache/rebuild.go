package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// damagedSuffix names the file a damaged index.db is moved to: index.db.damaged.
const damagedSuffix = ".damaged"

// IndexRebuild is what RebuildIndex did.
type IndexRebuild struct {
	// Blobs counts the blobs of blobs/ the new index records.
	Blobs int `json:"blobs"`
	// LostImages names, sorted, the images index.json listed: the damaged index held their
	// records, which the new one lacks until a fetch records them again. Empty when
	// index.json was unreadable too.
	LostImages []string `json:"lost_images"`
	// Damaged is the path the damaged index was moved to. Nothing reads it; it is kept for
	// inspection and may be deleted.
	Damaged string `json:"damaged"`
}

// RebuildIndex replaces the damaged index.db of the cache at dir by a new one recording every
// blob in blobs/ and no image. Image records live only in index.db, so they are lost, but a
// fetch of the same lists records them again without downloading a blob. Until then their
// blobs look unneeded: the new index remembers the lost names (VerifyReport.LostImages), and
// Prune refuses to run without a list of the images to keep. The damaged file is kept as
// index.db.damaged, replacing an older one, and index.json is rewritten to list no image.
//
// RebuildIndex takes the writer lock (ErrLocked when another process holds it) and fails with
// ErrNotFound when dir holds no index.db, unless index.json lists images: then the index was
// lost, and is rebuilt like a damaged one. It only replaces an index it cannot read: when
// index.db reads cleanly it fails and changes no record.
func RebuildIndex(dir string, opts Options) (IndexRebuild, error) {
	c := newCache(dir, opts)
	// A lost index (missing or empty) has no version to check; any other must exist, and a
	// newer cache or another program's database fails here, before the lock file is made.
	if c.indexLost() == nil {
		err := c.checkExists()
		if err != nil {
			return IndexRebuild{}, err
		}

		err = c.checkVersion()
		if err != nil && !errors.Is(err, ErrIndexDamaged) {
			return IndexRebuild{}, err
		}
	}

	var err error
	c.lock, err = acquireLock(c.dir)
	if err != nil {
		return IndexRebuild{}, err
	}

	rebuild, err := c.rebuildIndex()
	err = errors.Join(err, releaseLock(c.lock))
	if err != nil {
		return rebuild, fmt.Errorf("rebuild index of cache %s: %w", c.dir, err)
	}

	return rebuild, nil
}

// rebuildIndex moves a damaged index.db aside and builds a new one from blobs/. The caller
// holds the writer lock.
func (c *Cache) rebuildIndex() (IndexRebuild, error) {
	err := c.probeIndex()
	if err == nil {
		return IndexRebuild{}, fmt.Errorf("%s reads cleanly, so there is nothing to rebuild",
			dbFile)
	}
	if !errors.Is(err, ErrIndexDamaged) {
		return IndexRebuild{}, err
	}
	c.log.Warn("rebuilding the damaged index from the blobs", "err", err)

	rebuild := IndexRebuild{LostImages: c.listedImages(), Damaged: c.path(dbFile + damagedSuffix)}
	err = os.Rename(c.path(dbFile), rebuild.Damaged)
	if errors.Is(err, os.ErrNotExist) {
		rebuild.Damaged = ""
	} else if err != nil {
		return rebuild, fmt.Errorf("move the damaged %s aside: %w", dbFile, err)
	}

	err = c.initDB()
	if err == nil {
		err = c.withDB(true, func(tx *bolt.Tx) error {
			return writeLost(tx, rebuild.LostImages)
		})
	}
	if err != nil {
		return rebuild, err
	}

	added, err := c.reindex()
	if err != nil {
		return rebuild, err
	}
	rebuild.Blobs = len(added)

	c.imageMu.Lock()
	defer c.imageMu.Unlock()

	return rebuild, c.writeIndex()
}

// probeIndex reads every bucket of index.db, as a writable Open and Verify do, so that a
// damaged index fails here with ErrIndexDamaged. Another program's database fails too, but
// not so: it is not dls's to replace.
func (c *Cache) probeIndex() error {
	err := c.indexLost()
	if err != nil {
		return err
	}

	err = c.checkVersion()
	if err != nil {
		return err
	}

	err = c.initDB()
	if err != nil {
		return err
	}

	_, err = c.Images()
	if err != nil {
		return err
	}

	_, err = c.indexedBlobs()

	return err
}

// indexLost fails with ErrIndexDamaged when index.db is missing or empty while index.json
// still lists images. A new cache never looks like that (index.json lists no image before
// the first commit), so the index was deleted or emptied on the way (a bad copy, a full
// disk): treating the directory as a new cache would drop every image record, and make
// verify and prune take every blob for an orphan.
func (c *Cache) indexLost() error {
	fi, err := os.Stat(c.path(dbFile))
	if err == nil && fi.Size() > 0 || err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil
	}

	if _, statErr := os.Stat(c.path(indexFile)); statErr != nil {
		return nil
	}
	names := c.listedImages()
	if len(names) == 0 {
		return nil
	}

	state := "is empty"
	if err != nil {
		state = "is missing"
	}
	return fmt.Errorf("cache %s: %s %s, yet %s lists %d images; run dls verify --repair to "+
		"rebuild it from the blobs, then dls fetch the same lists to record the images "+
		"again: %w", c.dir, dbFile, state, indexFile, len(names), ErrIndexDamaged)
}

// listedImages returns, sorted, the image names index.json lists, or nil when it cannot be
// read: it is the one record of the images outside index.db.
func (c *Cache) listedImages() []string {
	data, err := os.ReadFile(c.path(indexFile))
	var index ocispec.Index
	if err == nil {
		err = json.Unmarshal(data, &index)
	}
	if err != nil {
		c.log.Warn("cannot tell which image records are lost", "file", indexFile, "err", err)
		return nil
	}

	var names []string
	for _, desc := range index.Manifests {
		if name := desc.Annotations[annotationImageName]; name != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)

	return slices.Compact(names)
}
